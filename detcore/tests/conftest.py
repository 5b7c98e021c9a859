"""Shared fixtures: fake installed distributions (a dist-info folder on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest


def write_dist(root: Path, name: str, version: str = "1.0",
               entry_points: dict[str, dict[str, str]] | None = None,
               files: dict[str, str] | None = None) -> Path:
    """Write a minimal installed distribution (dist-info + module files) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, eps in (entry_points or {}).items():
        lines.append(f"[{group}]")
        lines += [f"{k} = {v}" for k, v in eps.items()]
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
    for rel, text in (files or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def clear_caches() -> None:
    from detcore.config import locate
    from detcore.plugins import manager
    from detcore.registry import discovery

    discovery.scan_entry_points.cache_clear()
    locate.config_dirs.cache_clear()
    manager.get_plugin_manager.cache_clear()
    import importlib

    importlib.invalidate_caches()


@pytest.fixture
def torch_state():
    """Runs a test on one thread (tiny models, shared cores) and undoes deterministic mode afterwards
    (the engine, API and bad-input folders use it for every test)."""
    import torch

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    yield
    torch.use_deterministic_algorithms(deterministic)
    torch.set_num_threads(threads)


@pytest.fixture
def fake_dist(tmp_path, monkeypatch) -> Callable[..., Path]:
    """Install fake distributions in-process for one test (sys.path + cache reset)."""
    counter = iter(range(1000))

    def make(name: str, **kwargs) -> Path:
        root = write_dist(tmp_path / f"site{next(counter)}", name, **kwargs)
        monkeypatch.syspath_prepend(str(root))
        clear_caches()
        return root

    yield make
    clear_caches()


@pytest.fixture
def dist_writer() -> Callable[..., Path]:
    """``write_dist`` for tests that run detcore in a subprocess with the fake site on PYTHONPATH."""
    return write_dist


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess]:
    """``run_cli``: ``detcore ARGS`` in a fresh process."""
    return run_cli


def run_cli(*args: str, extra_path: list[Path] = (), env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``detcore ARGS`` in a fresh process with extra sys.path entries."""
    full_env = dict(os.environ, **(env or {}))
    paths = [str(p) for p in extra_path]
    if full_env.get("PYTHONPATH"):
        paths.append(full_env["PYTHONPATH"])
    full_env["PYTHONPATH"] = os.pathsep.join(paths)
    return subprocess.run([sys.executable, "-m", "detcore.cli.main", *args],
                          capture_output=True, text=True, env=full_env)
