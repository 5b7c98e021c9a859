"""Optional third-party packages: imported on use, with an error naming the extra that installs them."""

from __future__ import annotations

import contextlib
import importlib
from types import ModuleType
from typing import Any, Iterator

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


@contextlib.contextmanager
def numpy_alias(name: str, value: Any) -> Iterator[None]:
    """``numpy.<name>`` while an optional package that still calls a function numpy removed runs (lvis 0.5.3's
    ``np.float``, cityscapesscripts 2.3's ``np.in1d``); the alias is taken away again afterwards."""
    import numpy as np

    added = name not in np.__dict__
    if added:
        setattr(np, name, value)
    try:
        yield
    finally:
        if added:
            delattr(np, name)
