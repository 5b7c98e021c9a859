"""Mixed precision: the autocast context of forward passes and the fp16 gradient scaler.

bfloat16 keeps float32's exponent range, so it needs no loss scaling and runs on CPUs
(oneDNN); float16 needs CUDA and a ``GradScaler`` against underflowing gradients.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import torch

from detcore.errors import ConfigError

AMP_DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


class MixedPrecision:
    """The ``amp`` table (``enable``, ``dtype`` = "auto" | "bfloat16" | "float16") resolved for ``device``.

    "auto" is float16 on CUDA and bfloat16 elsewhere. Disabled, :meth:`autocast` does nothing.
    """

    def __init__(self, cfg: Mapping[str, Any] | bool | None, device: torch.device) -> None:
        if isinstance(cfg, bool):
            cfg = {"enable": cfg}
        cfg = dict(cfg or {})
        unknown = set(cfg) - {"enable", "dtype"}
        if unknown:
            raise ConfigError(f"amp (or fp16) table has unknown keys {sorted(unknown)}; use enable and dtype")
        self.device = device
        self.enabled = bool(cfg.get("enable", False))
        self.dtype: torch.dtype | None = None
        self.grad_scaler: torch.amp.GradScaler | None = None
        if not self.enabled:
            return
        name = str(cfg.get("dtype", "auto"))
        if name == "auto":
            self.dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        elif name in AMP_DTYPES:
            self.dtype = AMP_DTYPES[name]
        else:
            raise ConfigError(f"amp.dtype must be 'auto', 'bfloat16' or 'float16', got {name!r}")
        if self.dtype == torch.float16:
            if device.type != "cuda":
                raise ConfigError("amp.dtype = 'float16' needs a CUDA device; use 'bfloat16' on CPU")
            self.grad_scaler = torch.amp.GradScaler("cuda")

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The context forward passes run in."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)


INFERENCE_PRECISIONS = ("fp32", "bf16", "fp16")


def inference_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` ("fp32" | "bf16" | "fp16", or the long names) on ``device``;
    None for fp32. bf16 runs anywhere (fastest on CPUs with AVX-512 BF16 / AMX); fp16 needs CUDA."""
    name = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(str(precision), str(precision))
    if name not in INFERENCE_PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(INFERENCE_PRECISIONS)}, got {precision!r}")
    if name == "fp32":
        return None
    if name == "fp16" and device.type != "cuda":
        raise ConfigError("precision 'fp16' needs a CUDA device; use 'bf16' on CPU")
    return AMP_DTYPES[name]


def precision_settings(precision: str, device: torch.device) -> dict[str, Any]:
    """The ``amp`` table that gives inference in ``precision`` (for :class:`MixedPrecision`)."""
    dtype = inference_dtype(precision, device)
    return {"enable": False} if dtype is None else {"enable": True, "dtype": str(dtype).removeprefix("torch.")}


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 in hardware (AVX-512 BF16 or AMX), where bf16 autocast is faster than
    fp32; elsewhere PyTorch emulates bf16 and it is many times slower."""
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check is not None and bool(check()) for check in checks)


def autocast_for(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """Autocast to ``dtype`` on ``device``'s type, or nothing for None (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
