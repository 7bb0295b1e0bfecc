"""organism: see README."""
