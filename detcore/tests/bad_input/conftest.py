"""Bad-input tests: toy components installed as a fake distribution, and ``detcore`` run in-process.

Every test feeds one kind of bad input and checks the contract of issue 17: exit status 2 (1 for
``infer`` with some inputs failed), one paragraph naming the file or key and what to do, and
nothing already written lost.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, NamedTuple

import pytest

ENGINE = Path(__file__).parents[1] / "engine"
TOYS = ENGINE / "toy_components.py"
CFG_TOYS = Path(__file__).with_name("cfg_toys.py")

for folder in (str(ENGINE), str(Path(__file__).parent)):
    if folder not in sys.path:
        sys.path.insert(0, folder)

# the CLI tests' toy config, one epoch, no progress bar
TOY_CONFIG = (ENGINE / "toy_config.toml").read_text().replace("max_epochs = 2", "max_epochs = 1").replace(
    "[log]\ninterval = 1\n", "[log]\ninterval = 1\nprogress_bar = false\n")


class Result(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture(autouse=True)
def restore_torch_state(torch_state):
    """One thread, deterministic mode undone afterwards (``torch_state`` in the top conftest)."""
    yield


@pytest.fixture
def toys(fake_dist):
    """ToyDetector / ToyDataset and the cfg-declaring toys (CfgDetector, CfgHead) as installed components."""
    fake_dist("detcore-toys", entry_points={
        "detcore.detectors": {"ToyDetector": "detcore_toys:ToyDetector", "CfgDetector": "detcore_cfg_toys:CfgDetector"},
        "detcore.dense_heads": {"CfgHead": "detcore_cfg_toys:CfgHead"},
        "detcore.datasets": {"ToyDataset": "detcore_toys:ToyDataset"},
    }, files={"detcore_toys.py": TOYS.read_text(), "detcore_cfg_toys.py": CFG_TOYS.read_text()})


@pytest.fixture
def toy_config(tmp_path, toys) -> Path:
    path = tmp_path / "toy.toml"
    path.write_text(TOY_CONFIG)
    return path


@pytest.fixture
def detcore(capsys) -> Callable[..., Result]:
    """``detcore ARGS`` through the real entry point (``detcore.cli.main.main``), in-process."""
    from detcore.cli.main import main

    def run(*argv: object) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def weights(toy_config, tmp_path, detcore) -> Path:
    """A checkpoint trained on the toy config (one epoch)."""
    work = tmp_path / "work"
    assert detcore("train", toy_config, "--work-dir", work).code == 0
    return work / "latest.pth"
