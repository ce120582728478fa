"""twin stage."""
