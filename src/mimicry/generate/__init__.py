"""generate: see README."""
