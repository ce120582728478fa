"""Review tests: each demonstrates one finding of the integration review."""
