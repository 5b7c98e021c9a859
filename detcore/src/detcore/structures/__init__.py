"""Typed containers for what flows between components."""

from detcore.structures.instances import ImageMeta, Instances
from detcore.structures.sample import Batch, DetSample, collate

__all__ = ["Batch", "DetSample", "ImageMeta", "Instances", "collate"]
