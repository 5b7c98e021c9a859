"""``detcore.tools.flops``: FLOPs of known layers, per-module attribution, parameter counts."""

from __future__ import annotations

import torch
from torch import nn

from detcore.tools.flops import count_flops


class TwoConvs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)  # 2 * 8 * (16*16) * (3*3*3) = 110592 FLOPs
        self.norm = nn.BatchNorm2d(8)  # not counted (elementwise), as the manual's caveat says
        self.head = nn.Sequential(nn.Conv2d(8, 4, 1, stride=2))  # 2 * 4 * (8*8) * 8 = 4096 FLOPs
        self.fc = nn.Linear(4 * 8 * 8, 10)  # 2 * 256 * 10 = 5120 FLOPs

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Called as a method, not through __call__, like a detector's predict."""
        return self.fc(self.head(self.norm(self.stem(x))).flatten(1))


def test_flops_of_known_layers_and_modules():
    model = TwoConvs().eval()
    x = torch.randn(1, 3, 16, 16)
    report = count_flops(model, lambda: model.predict(x), tuple(x.shape), depth=2)
    per_module = {m.name: m for m in report.modules}
    assert per_module["stem"].flops == 110592
    assert per_module["head"].flops == per_module["head.0"].flops == 4096
    assert per_module["fc"].flops == 5120
    assert per_module["norm"].flops == 0
    assert report.total_flops == 110592 + 4096 + 5120
    assert report.gmacs == report.total_flops / 2e9
    assert per_module["stem"].params == 8 * 27 + 8
    assert report.total_params == sum(p.numel() for p in model.parameters())
    assert "stem" in report.table() and report.to_dict()["flops"] == report.total_flops
