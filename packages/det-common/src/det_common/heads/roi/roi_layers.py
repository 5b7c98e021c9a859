"""Single-level RoI pooling layers that an RoI extractor builds per feature level.

RoIAlign, RoIPool and deformable RoI pooling (Dai et al. 2017, "Deformable Convolutional Networks"; the
modulated variant of Zhu et al. 2019, "Deformable ConvNets v2"), all through ``detcore.ops``. They are the
``detcore.roi_layers`` kind: ``roi_layer = {type = "DeformRoIPoolPack", output_size = 7, output_channels = 256}``
in an extractor's config names one, and the extractor supplies ``spatial_scale`` per level.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from detcore import ops
from detcore.errors import UnknownComponentError
from detcore.registry import build


def _fp32_nchw(feat: Tensor) -> Tensor:
    """``feat`` as contiguous NCHW of at least fp32 in one copy (none if it already is): the pooling kernels read
    NCHW, and a bf16 channels-last map (the fast path under bf16 autocast) would otherwise be copied twice."""
    dtype = torch.float32 if feat.dtype in (torch.bfloat16, torch.float16) else feat.dtype
    return feat.to(dtype=dtype, memory_format=torch.contiguous_format)


def pooling_features(feats: Sequence[Tensor]) -> Sequence[Tensor]:
    """The neck's maps as the RoI layers read them (contiguous, fp32 or wider), converted once for a whole RoI head.

    At inference a cascade pools the same maps in every stage and again for masks; converting the fast path's
    channels-last (or bf16) maps here, instead of in each RoI layer call, does the copies once. Features that carry
    more than the levels (HTC's semantic features, ...) say how to rebuild themselves around the converted levels
    with a ``with_levels(levels)`` method; a plain sequence becomes a list.
    """
    levels = [_fp32_nchw(feat) for feat in feats]
    with_levels = getattr(feats, "with_levels", None)
    return levels if with_levels is None else with_levels(levels)


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
        """(K, C, oh, ow) features of RoIs (K, 5); pooled in fp32 or wider (RoIs lose pixels in bf16), in ``feat``'s
        dtype."""
        feat_in = _fp32_nchw(feat)
        pooled = ops.roi_align(
            feat_in, rois.to(feat_in.dtype), self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned,
            self.pool_mode,
        )
        return pooled.to(feat.dtype)

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
        """(K, C, oh, ow) features of RoIs (K, 5); pooled in fp32 or wider, returned in ``feat``'s dtype."""
        feat_in = _fp32_nchw(feat)
        return ops.roi_pool(feat_in, rois.to(feat_in.dtype), self.output_size, self.spatial_scale).to(feat.dtype)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"


class DeformRoIPool(nn.Module):
    """Deformable RoI pooling with offsets given by the caller (``detcore.ops.deform_roi_pool``, mmcv semantics)."""

    def __init__(
        self, output_size: int | tuple[int, int], spatial_scale: float = 1.0, sampling_ratio: int = 0, gamma: float = 0.1
    ) -> None:
        super().__init__()
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.gamma = float(gamma)

    def pool(self, feat: Tensor, rois: Tensor, offset: Tensor | None) -> Tensor:
        """(K, C, oh, ow) features of RoIs (K, 5); bins moved by ``gamma * offset`` times the RoI size."""
        return ops.deform_roi_pool(feat, rois, offset, self.output_size, self.spatial_scale, self.sampling_ratio,
                                   self.gamma)

    def forward(self, feat: Tensor, rois: Tensor, offset: Tensor | None = None) -> Tensor:
        return self.pool(feat, rois, offset)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, gamma={self.gamma}")


def offset_layers(in_features: int, hidden: int, out_features: int, depth: int) -> nn.Sequential:
    """``depth`` fully connected layers with ReLU between them, the last one zero-initialised (no shift at start)."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Linear(in_features if i == 0 else hidden, hidden if i < depth - 1 else out_features))
        if i < depth - 1:
            layers.append(nn.ReLU(inplace=True))
    nn.init.zeros_(layers[-1].weight)
    nn.init.zeros_(layers[-1].bias)
    return nn.Sequential(*layers)


class DeformRoIPoolPack(DeformRoIPool):
    """Deformable RoI pooling that learns its offsets: plain pooling -> ``offset_fc`` (3 fcs) -> pooling again.

    mmcv's parameter names (``offset_fc.0``, ``offset_fc.2``, ``offset_fc.4``), so MMDetection's dpool
    checkpoints load. ``output_channels`` is the channel count of the pooled feature map.
    """

    modulated = False  # the modulated variant adds ``mask_fc``

    def __init__(
        self,
        output_size: int | tuple[int, int],
        output_channels: int,
        deform_fc_channels: int = 1024,
        spatial_scale: float = 1.0,
        sampling_ratio: int = 0,
        gamma: float = 0.1,
    ) -> None:
        super().__init__(output_size, spatial_scale, sampling_ratio, gamma)
        self.output_channels = output_channels
        self.deform_fc_channels = deform_fc_channels
        bins = self.output_size[0] * self.output_size[1]
        self.offset_fc = offset_layers(bins * output_channels, deform_fc_channels, bins * 2, depth=3)
        if self.modulated:
            self.mask_fc = offset_layers(bins * output_channels, deform_fc_channels, bins, depth=2)
            self.mask_fc.append(nn.Sigmoid())

    def offsets(self, pooled: Tensor) -> Tensor:
        """(K, 2, oh, ow) bin offsets predicted from the plainly pooled features (K, C, oh, ow)."""
        return self.offset_fc(pooled.flatten(1)).view(pooled.shape[0], 2, *self.output_size)

    def plain_pool(self, feat: Tensor, rois: Tensor) -> Tensor:
        """Pooling without offsets (what the offsets are predicted from)."""
        if feat.shape[1] != self.output_channels:
            raise ValueError(f"{type(self).__name__}: output_channels = {self.output_channels} but the feature map "
                             f"has {feat.shape[1]} channels; set roi_layer.output_channels to the neck's out_channels")
        return self.pool(feat, rois, None)

    def forward(self, feat: Tensor, rois: Tensor) -> Tensor:  # type: ignore[override]
        return self.pool(feat, rois, self.offsets(self.plain_pool(feat, rois)))


class ModulatedDeformRoIPoolPack(DeformRoIPoolPack):
    """DeformRoIPoolPack whose bins are also scaled by a learnt modulation in (0, 1) from ``mask_fc`` (DCNv2)."""

    modulated = True

    def forward(self, feat: Tensor, rois: Tensor) -> Tensor:  # type: ignore[override]
        pooled = self.plain_pool(feat, rois)
        modulation = self.mask_fc(pooled.flatten(1)).view(pooled.shape[0], 1, *self.output_size)
        return self.pool(feat, rois, self.offsets(pooled)) * modulation


def build_roi_layer(cfg: dict[str, Any], spatial_scale: float) -> nn.Module:
    """Build the ``detcore.roi_layers`` component ``cfg["type"]`` for a feature map of the given spatial scale."""
    try:
        return build("roi_layers", cfg, spatial_scale=spatial_scale)
    except UnknownComponentError as exc:
        raise ValueError(f"roi_layer type {cfg.get('type')!r} is not an installed RoI layer: {exc}") from exc
