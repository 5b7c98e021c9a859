"""``detcore flops`` on a shipped detector config: a known layer's FLOPs, totals that add up, parameters."""

from __future__ import annotations

import json

from detcore.cli.commands.training import pick_demo_config
from detcore.cli.main import main
from detcore.config import load_config
from detcore.registry import build


def test_flops_command_on_a_shapes_detector(tmp_path, capsys):
    name = pick_demo_config()
    out = tmp_path / "flops.json"
    assert main(["flops", name, "--shape", "128", "160", "--depth", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "GMac" in printed and "backbone.conv1" in printed
    report = json.loads(out.read_text())
    modules = {m["name"]: m for m in report["modules"]}
    model = build("detectors", load_config(name)["model"])
    # ResNet stem: 7x7 conv, 3 -> C channels, stride 2: 64 x 80 outputs of C channels, 147 multiply-adds each
    stem = model.backbone.conv1
    assert stem.kernel_size == (7, 7) and stem.stride == (2, 2) and stem.in_channels == 3
    assert modules["backbone.conv1"]["flops"] == 2 * 64 * 80 * stem.out_channels * 7 * 7 * 3
    top = [m for m in report["modules"] if "." not in m["name"]]
    assert sum(m["flops"] for m in top) == report["flops"]  # everything counted belongs to a top-level part
    assert report["params"] == sum(p.numel() for p in model.parameters())
    assert modules["backbone"]["params"] == sum(p.numel() for p in model.backbone.parameters())
    assert report["gmacs"] * 2 == report["gflops"]
