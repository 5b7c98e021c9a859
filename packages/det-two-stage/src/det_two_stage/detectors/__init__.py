"""Whole detectors of the two-stage family."""
