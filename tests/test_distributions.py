"""Cross-package checks over the first-party distributions installed together."""

from __future__ import annotations

import importlib.metadata as md
import json
import subprocess
import sys


def _detcore(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "detcore.cli.main", *args], capture_output=True, text=True)


def test_components_of_several_distributions_are_listed():
    out = _detcore("list-components", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    dists = {r["distribution"] for r in rows}
    assert {"detcore", "det-common"} <= dists
    for row in rows:
        assert set(row) >= {"kind", "name", "distribution", "version", "target", "status"}
        assert row["version"] == md.version(row["distribution"])


def test_every_component_imports_and_none_collide():
    out = _detcore("list-components", "--check", "--json")
    rows = json.loads(out.stdout)
    bad = [r for r in rows if r["status"] not in ("ok",)]
    assert not bad, bad
    assert out.returncode == 0


def test_catalog_agrees_with_installed_first_party_entry_points():
    """Each catalog hint names the distribution that really registers the component."""
    import tomllib
    from importlib.resources import files

    from detcore.registry import components

    catalog = tomllib.loads(files("detcore.registry").joinpath("catalog.toml").read_text())
    installed = {(s.kind, s.name): s.distribution for s in components()}
    installed_dists = {s.distribution for s in components()}
    for kind, names in catalog.items():
        for name, dist in names.items():
            if dist in installed_dists:
                assert installed.get((kind, name)) == dist, (kind, name, dist)
