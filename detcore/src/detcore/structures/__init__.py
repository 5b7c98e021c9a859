"""Typed containers for what flows between components."""

from detcore.structures.instances import ImageMeta, Instances
from detcore.structures.sample import SEG_IGNORE, Batch, DetSample, collate

__all__ = ["SEG_IGNORE", "Batch", "DetSample", "ImageMeta", "Instances", "collate"]
