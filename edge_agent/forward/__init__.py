"""forward stage."""
