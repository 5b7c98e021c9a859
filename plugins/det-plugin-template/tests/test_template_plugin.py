"""Installing the template makes its component discoverable and buildable; uninstalling removes it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN_DIR = Path(__file__).resolve().parents[1]


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                   check=True)


def _detcore(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "detcore.cli.main", *args],
                          capture_output=True, text=True)


def _installed() -> bool:
    out = subprocess.run([sys.executable, "-m", "pip", "show", "det-plugin-template"],
                         capture_output=True, text=True)
    return out.returncode == 0


@pytest.fixture
def template_uninstalled_after():
    was_installed = _installed()
    yield
    if was_installed and not _installed():
        _pip("install", "--no-deps", "--no-build-isolation", str(PLUGIN_DIR))


def test_install_build_uninstall(template_uninstalled_after, tmp_path):
    _pip("install", "--no-deps", "--no-build-isolation", str(PLUGIN_DIR))

    listed = json.loads(_detcore("list-components", "--kind", "backbones", "--json").stdout)
    rows = [r for r in listed if r["name"] == "TinyConvBackbone"]
    assert rows and rows[0]["distribution"] == "det-plugin-template"
    assert rows[0]["target"] == "det_plugin_template.backbone:TinyConvBackbone"

    # A config shipped by the plugin builds the component, in a fresh process.
    script = (
        "import torch\n"
        "from detcore.config import load_config\n"
        "from detcore.registry import build\n"
        "cfg = load_config('tiny_backbone_example')\n"
        "m = build('backbones', cfg['model']['backbone'])\n"
        "feats = m(torch.zeros(1, 3, 64, 64))\n"
        "print(type(m).__name__, [tuple(f.shape) for f in feats])\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "TinyConvBackbone [(1, 8, 32, 32), (1, 16, 16, 16), (1, 32, 8, 8)]"

    # Its pluggy hooks: a CLI subcommand and an env check.
    info = _detcore("template-info", "--stages", "2")
    assert info.returncode == 0, info.stderr
    assert "channels=[16, 32]" in info.stdout

    _pip("uninstall", "-y", "det-plugin-template")
    listed = json.loads(_detcore("list-components", "--json").stdout)
    assert not [r for r in listed if r["distribution"] == "det-plugin-template"]
    gone = _detcore("config", "show", "tiny_backbone_example")
    assert gone.returncode == 2 and "No config named 'tiny_backbone_example'" in gone.stderr
    missing = subprocess.run(
        [sys.executable, "-c",
         "from detcore.registry import build\nbuild('backbones', {'type': 'TinyConvBackbone'})"],
        capture_output=True, text=True)
    assert "Unknown backbones component 'TinyConvBackbone'" in missing.stderr


def test_backbone_shapes_and_channels():
    import torch

    from det_plugin_template.backbone import TinyConvBackbone

    torch.manual_seed(0)
    m = TinyConvBackbone(base_channels=4, num_stages=2).eval()
    x = torch.randn(2, 3, 32, 48)
    feats = m(x)
    assert m.out_channels == [4, 8]
    # the first stage is conv -> BN(eval) -> ReLU: recompute it directly
    conv, bn, _ = m.stages[0]
    expected = torch.relu(bn(conv(x)))
    torch.testing.assert_close(feats[0], expected)
    assert feats[1].shape == (2, 8, 8, 12)
