"""Whole detectors of the cascade family."""
