"""``Corrupt``: one ImageNet-C corruption at a severity (the robustness benchmark's test-time step,
put right after ``LoadImageFromFile``). Kernels in :mod:`detcore.data.corruptions`."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors

from detcore.data.corruptions import BENCHMARK, corrupt
from detcore.interfaces.data import Transform


class Corrupt(Transform):
    """Apply ``corruption`` (one of the 15 ImageNet-C names) at ``severity`` 1-5 to ``img``.

    ``seed``: with a seed, the random parts (noise, fog, snow, ...) of an image depend only on the seed,
    the corruption and the image id, so an evaluation is repeatable; without, they come from numpy's global RNG.
    """

    def __init__(self, corruption: str, severity: int = 1, seed: int | None = None) -> None:
        if corruption not in BENCHMARK:
            raise ValueError(f"Corrupt: unknown corruption {corruption!r}; use one of {', '.join(BENCHMARK)}")
        if int(severity) not in (1, 2, 3, 4, 5):
            raise ValueError(f"Corrupt: severity must be 1..5, got {severity}")
        self.corruption = corruption
        self.severity = int(severity)
        self.seed = seed

    def _rng(self, results: dict[str, Any]) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng(np.random.randint(0, 2**31))
        key = f"{self.corruption}/{self.severity}/{results.get('img_id', results.get('filename', ''))}"
        return np.random.default_rng([int(self.seed), zlib.crc32(key.encode())])

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        img = results["img"].as_subclass(torch.Tensor)
        was_float = img.is_floating_point()
        array = img.clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy() if was_float else img.permute(1, 2, 0).numpy()
        out_array = corrupt(array, self.corruption, self.severity, self._rng(results))
        pixels = torch.from_numpy(np.ascontiguousarray(out_array)).permute(2, 0, 1).contiguous()
        out = dict(results)
        out["img"] = tv_tensors.Image(pixels.float() if was_float else pixels)
        return out

    def __repr__(self) -> str:
        return f"Corrupt(corruption={self.corruption!r}, severity={self.severity}, seed={self.seed})"
