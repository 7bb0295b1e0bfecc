"""capture: see README."""
