"""Engine-test helpers: ``toy_components`` importable under importlib mode; torch global state restored."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = str(Path(__file__).parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)


@pytest.fixture(autouse=True)
def restore_torch_state(torch_state):
    """One thread, deterministic mode undone afterwards (``torch_state`` in the top conftest)."""
    yield
