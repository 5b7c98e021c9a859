"""Uninstalling a family removes exactly its components (and installing it back restores them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = {
    "det-cascade": ROOT / "packages/det-cascade",
    "det-two-stage": ROOT / "packages/det-two-stage",
    "det-single-stage": ROOT / "packages/det-single-stage",
    "det-keypoint": ROOT / "packages/det-keypoint",
}


def _rows() -> set[tuple[str, str, str]]:
    out = subprocess.run([sys.executable, "-m", "detcore.cli.main", "list-components", "--json"],
                         capture_output=True, text=True, check=True)
    return {(r["kind"], r["name"], r["distribution"]) for r in json.loads(out.stdout)}


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "-q", "--disable-pip-version-check", *args], check=True)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_uninstall_removes_exactly_the_family(family, tmp_path):
    before = _rows()
    owned = {r for r in before if r[2] == family}
    assert owned, f"{family} registers nothing"
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(FAMILIES[family]))
    _pip("uninstall", "-y", family)
    try:
        after = _rows()
        assert after == before - owned
    finally:
        _pip("install", "--no-deps", str(next(tmp_path.glob("*.whl"))))
    assert _rows() == before


def test_two_stage_owns_rpn_and_faster_rcnn():
    rows = _rows()
    names = {(k, n) for k, n, d in rows if d == "det-two-stage"}
    assert {("detectors", "FasterRCNN"), ("detectors", "RPN")} <= names
    assert ("dense_heads", "RPNHead", "det-common") in rows  # shared with cascade and later families
