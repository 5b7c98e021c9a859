"""``detcore flops``: parameters and FLOPs of a detector, per module and in total (manual `003` §2.3.2).

Counted with ``torch.utils.flop_counter.FlopCounterMode`` rather than fvcore or a hook-based
counter (MMDetection's flops-counter.pytorch): it ships with torch (no extra dependency), counts
at the aten level through the dispatcher, so any module whose work ends in matmul / convolution /
attention ops is counted (custom heads included) with no per-layer table to maintain, and it
needs no JIT trace, so detectors with data-dependent control flow (NMS, RoI sampling) run as they
are. Caveats, as in `003`: only matrix-multiply-like ops are counted (normalisation, activations,
pooling, NMS and other elementwise work are not), FLOPs depend on the input shape while parameters
do not, and a two-stage detector's FLOPs depend on how many proposals reach its RoI head.
One multiply-add is 2 FLOPs; ``gmacs`` is FLOPs / 2, the unit `003` prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class ModuleCost:
    name: str
    params: int
    flops: int


@dataclass
class FlopsReport:
    input_shape: tuple[int, ...]
    total_flops: int
    total_params: int
    modules: list[ModuleCost] = field(default_factory=list)

    @property
    def gflops(self) -> float:
        return self.total_flops / 1e9

    @property
    def gmacs(self) -> float:
        return self.total_flops / 2e9

    def table(self) -> str:
        lines = [f"{'module':<48} {'params':>12} {'GFLOPs':>10}"]
        for m in self.modules:
            lines.append(f"{m.name:<48} {m.params:>12,} {m.flops / 1e9:>10.4f}")
        lines.append(f"{'total':<48} {self.total_params:>12,} {self.gflops:>10.4f}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"input_shape": list(self.input_shape), "flops": self.total_flops, "gflops": self.gflops,
                "gmacs": self.gmacs, "params": self.total_params,
                "modules": [{"name": m.name, "params": m.params, "flops": m.flops} for m in self.modules]}


class _Call(nn.Module):
    """Holds ``model`` as a child and calls ``run`` in its forward, so the flop counter's module
    tracker names every submodule by its path in ``model`` (``Call.model.backbone.layer1``) even
    when ``run`` calls a method such as ``predict`` rather than ``model(...)``."""

    def __init__(self, model: nn.Module, run: Callable[[], Any]) -> None:
        super().__init__()
        self.model = model
        self.run = run

    def forward(self) -> Any:
        return self.run()


def count_flops(model: nn.Module, run: Callable[[], Any], input_shape: tuple[int, ...], depth: int = 2) -> FlopsReport:
    """FLOPs of ``run()`` (which calls ``model``) per submodule down to ``depth`` levels, and parameters."""
    with torch.inference_mode(), FlopCounterMode(display=False, depth=None) as counter:
        _Call(model, run)()
    counts = counter.get_flop_counts()
    root = "_Call.model"
    params = {name: sum(p.numel() for p in mod.parameters()) for name, mod in model.named_modules()}

    def module_flops(name: str, mod: nn.Module) -> int:
        # a module entered through __call__ has its own count; one only used through methods
        # (an RoI head's predict) gets the sum of its children's
        if f"{root}.{name}" in counts:
            return int(sum(counts[f"{root}.{name}"].values()))
        return sum(module_flops(f"{name}.{child_name}", child) for child_name, child in mod.named_children())

    modules = [ModuleCost(name, params[name], module_flops(name, mod)) for name, mod in model.named_modules()
               if name and name.count(".") < depth]
    total = sum(counts.get("Global", {}).values())
    return FlopsReport(tuple(input_shape), int(total), params[""], modules)


def blank_batch(height: int, width: int, device: torch.device | str = "cpu") -> Any:
    """One mid-grey image of (height, width) as a detector ``Batch`` (no padding, scale 1)."""
    from detcore.structures import Batch, ImageMeta

    images = torch.zeros(1, 3, height, width, device=device)
    meta = ImageMeta(ori_shape=(height, width), img_shape=(height, width), pad_shape=(height, width))
    return Batch(images=images, metas=[meta])


def detector_flops(model: nn.Module, height: int, width: int, mode: str = "predict", depth: int = 2) -> FlopsReport:
    """FLOPs of a detector on one (3, height, width) image: ``predict`` (the whole test-time forward,
    post-processing included) or ``tensor`` (the network only: ``forward_tensor``)."""
    if mode not in ("predict", "tensor"):
        raise ValueError(f"mode must be 'predict' or 'tensor', got {mode!r}")
    model.eval()
    batch = blank_batch(height, width, next(model.parameters()).device)
    if mode == "predict":
        return count_flops(model, lambda: model.predict(batch), (1, 3, height, width), depth)
    return count_flops(model, lambda: model.forward_tensor(batch.images), (1, 3, height, width), depth)
