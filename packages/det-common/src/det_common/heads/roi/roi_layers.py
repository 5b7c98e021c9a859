"""Single-level RoI pooling layers (RoIAlign, RoIPool) that an RoI extractor builds per feature level."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from detcore import ops


class RoIAlign(nn.Module):
    """RoIAlign of one feature map of stride 1 / ``spatial_scale`` (``detcore.ops.roi_align`` semantics)."""

    def __init__(
        self,
        output_size: int | tuple[int, int],
        spatial_scale: float,
        sampling_ratio: int = 0,
        aligned: bool = True,
        pool_mode: str = "avg",
    ) -> None:
        super().__init__()
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = bool(aligned)
        self.pool_mode = pool_mode

    def forward(self, feat: Tensor, rois: Tensor) -> Tensor:
        return ops.roi_align(
            feat, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned, self.pool_mode
        )

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}, pool_mode={self.pool_mode!r}"
        )


class RoIPool(nn.Module):
    """Fast R-CNN's RoIPool (max over quantized bins) of one feature map."""

    def __init__(self, output_size: int | tuple[int, int], spatial_scale: float) -> None:
        super().__init__()
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        self.spatial_scale = float(spatial_scale)

    def forward(self, feat: Tensor, rois: Tensor) -> Tensor:
        return ops.roi_pool(feat, rois, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"


ROI_LAYERS: dict[str, type[nn.Module]] = {"RoIAlign": RoIAlign, "RoIPool": RoIPool}


def build_roi_layer(cfg: dict[str, Any], spatial_scale: float) -> nn.Module:
    """Build the layer named by ``cfg["type"]`` for a feature map of the given spatial scale."""
    cfg = dict(cfg)
    kind = cfg.pop("type", None)
    if kind not in ROI_LAYERS:
        raise ValueError(f"roi_layer type must be one of {sorted(ROI_LAYERS)}, got {kind!r}")
    return ROI_LAYERS[kind](spatial_scale=spatial_scale, **cfg)
