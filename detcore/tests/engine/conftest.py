"""Engine-test helpers: ``toy_components`` importable under importlib mode; torch global state restored."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

HERE = str(Path(__file__).parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)


@pytest.fixture(autouse=True)
def restore_torch_state():
    """Runs each test on one thread (tiny models, shared cores) and undoes deterministic mode afterwards."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    yield
    torch.use_deterministic_algorithms(deterministic)
    torch.set_num_threads(threads)
