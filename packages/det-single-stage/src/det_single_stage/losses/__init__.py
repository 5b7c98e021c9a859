"""Losses of the anchor-based single-stage family (GFL, GHM, LD)."""
