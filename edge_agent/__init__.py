"""edge-agent: an edge agent for industrial gateways."""

__version__ = "0.1.0"
