"""Errors detcore reports to users: one named paragraph each, never a bare traceback.

The CLI prints ``str(error)`` of any ``DetcoreError`` and exits with status 2.
"""

from __future__ import annotations


class DetcoreError(Exception):
    """Base of every user-facing detcore error."""


class ConfigError(DetcoreError, ValueError):
    """A config file or override is malformed, cyclic or names an unknown key."""


class UnknownComponentError(DetcoreError, KeyError):
    """A config asks for a component type that no installed distribution provides."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateComponentError(DetcoreError):
    """Two distributions register the same (kind, name)."""


class ComponentLoadError(DetcoreError, ImportError):
    """A registered component's module failed to import (a broken plugin)."""


class DataError(DetcoreError, ValueError):
    """A dataset, annotation file or image is missing or malformed."""


class CheckpointError(DetcoreError, ValueError):
    """A checkpoint file is missing, truncated or does not fit the model."""


class BadImageError(DataError):
    """An image file is missing, cannot be decoded or does not match its annotation (a data loader
    with ``on_bad_image = "skip"`` skips it)."""
