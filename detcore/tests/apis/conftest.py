"""API/CLI-test helper: torch global state (threads, deterministic mode) restored after each test."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def restore_torch_state(torch_state):
    """One thread, deterministic mode undone afterwards (``torch_state`` in the top conftest)."""
    yield
