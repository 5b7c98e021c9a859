"""API/CLI-test helper: torch global state (threads, deterministic mode) restored after each test."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def restore_torch_state():
    """Runs each test on one thread (tiny models, shared cores) and undoes deterministic mode afterwards."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    yield
    torch.use_deterministic_algorithms(deterministic)
    torch.set_num_threads(threads)
