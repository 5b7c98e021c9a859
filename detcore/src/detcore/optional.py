"""Optional third-party packages: imported on use, with an error naming the extra that installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from detcore.errors import DetcoreError


class MissingExtraError(DetcoreError, ImportError):
    """An optional package a feature needs is not installed."""


def require(module: str, extra: str, purpose: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` saying which extra / package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{purpose} needs the optional package {package or module}, which is not installed "
            f"({exc}). Install it with: pip install 'detcore[{extra}]' (or pip install {package or module})."
        ) from exc
