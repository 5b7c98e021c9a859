"""Abstract bases of the model components (MMDetection paper `000` §3.1, manual `003` §4.2).

A detector = backbone -> neck -> dense head and/or (RoI extractor -> RoI head). Every
component is an ``nn.Module`` built from a config table by the registry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

from torch import Tensor, nn

from detcore.structures import Batch, ImageMeta, Instances


class Backbone(nn.Module, ABC):
    """Image tensor (N, 3, H, W) -> multi-level feature maps, finest first."""

    #: channels of each returned level, so necks can be configured from it
    out_channels: Sequence[int] = ()

    @abstractmethod
    def forward(self, images: Tensor) -> tuple[Tensor, ...]: ...


class Neck(nn.Module, ABC):
    """Multi-level features -> enhanced multi-level features (e.g. FPN)."""

    @abstractmethod
    def forward(self, feats: Sequence[Tensor]) -> tuple[Tensor, ...]: ...


class DenseHead(nn.Module, ABC):
    """Operates on every location of the feature maps (RPN, RetinaNet, FCOS heads).

    ``forward`` returns the raw per-level outputs; ``loss`` computes training losses
    against the ground truth; ``predict`` turns outputs into boxes in original-image
    pixels when ``rescale`` (else in the network-input pixels).
    """

    @abstractmethod
    def forward(self, feats: Sequence[Tensor]) -> Any: ...

    @abstractmethod
    def loss(self, feats: Sequence[Tensor], batch: Batch) -> dict[str, Tensor]: ...

    @abstractmethod
    def predict(
        self, feats: Sequence[Tensor], metas: Sequence[ImageMeta], rescale: bool = True
    ) -> list[Instances]: ...

    def loss_and_predict(
        self, feats: Sequence[Tensor], batch: Batch, rescale: bool = False
    ) -> tuple[dict[str, Tensor], list[Instances]]:
        """Losses plus predictions from one forward pass (RPN feeding an RoI head)."""
        return self.loss(feats, batch), self.predict(feats, batch.metas, rescale=rescale)


class RoIExtractor(nn.Module, ABC):
    """Pools a fixed-size feature per RoI from multi-level features (e.g. RoIAlign + level mapping)."""

    @abstractmethod
    def forward(self, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
        """``rois`` is (K, 5): batch index, x1, y1, x2, y2 in network-input pixels."""


class BBoxHead(nn.Module, ABC):
    """Per-RoI classification scores and box regression."""

    @abstractmethod
    def forward(self, roi_feats: Tensor) -> tuple[Tensor, Tensor]: ...


class MaskHead(nn.Module, ABC):
    """Per-RoI mask logits (K, num_classes or 1, M, M)."""

    @abstractmethod
    def forward(self, roi_feats: Tensor) -> Tensor: ...


class RoIHead(nn.Module, ABC):
    """Second stage: refines proposals into detections (bbox / mask branches)."""

    @abstractmethod
    def loss(
        self, feats: Sequence[Tensor], proposals: list[Instances], batch: Batch
    ) -> dict[str, Tensor]: ...

    @abstractmethod
    def predict(
        self,
        feats: Sequence[Tensor],
        proposals: list[Instances],
        metas: Sequence[ImageMeta],
        rescale: bool = True,
    ) -> list[Instances]: ...


class Detector(nn.Module, ABC):
    """A whole detector (`003` §4.2: BaseDetector).

    ``loss(batch)`` returns named loss tensors (every key containing "loss" is summed
    for back-propagation, the others are logged); ``predict(batch)`` returns one
    ``Instances`` per image with boxes in original-image pixels when ``rescale``.
    """

    @abstractmethod
    def extract_feat(self, images: Tensor) -> tuple[Tensor, ...]: ...

    @abstractmethod
    def loss(self, batch: Batch) -> dict[str, Tensor]: ...

    @abstractmethod
    def predict(self, batch: Batch, rescale: bool = True) -> list[Instances]: ...

    def predict_tta(self, batches: Sequence[Batch]) -> list[Instances]:
        """Test-time augmentation: predict each augmented view (in original pixels), then merge each image's
        views with ``merge_tta_views``; detectors override this for feature-level merging."""
        per_view = [self.predict(b, rescale=True) for b in batches]
        return [self.merge_tta_views(list(views)) for views in zip(*per_view)]

    def merge_tta_views(self, views: list[Instances]) -> Instances:
        """One image's detections over its views -> one set. Default: class-wise NMS (``tta_iou_threshold``,
        ``tta_max_per_img`` attributes may tune it); a detector overrides it for another merge (e.g. soft-NMS)."""
        from detcore.structures.tta import merge_views

        return merge_views(views, iou_threshold=getattr(self, "tta_iou_threshold", 0.5),
                           max_per_img=getattr(self, "tta_max_per_img", 100))

    def forward(self, batch: Batch, mode: str = "predict") -> Any:
        """``mode`` is "loss", "predict" or "tensor" (raw head outputs, for export)."""
        if mode == "loss":
            return self.loss(batch)
        if mode == "predict":
            return self.predict(batch)
        if mode == "tensor":
            return self.forward_tensor(batch.images)
        raise ValueError(f"Detector.forward: unknown mode {mode!r}; use 'loss', 'predict' or 'tensor'")

    def forward_tensor(self, images: Tensor) -> Any:
        """Raw network outputs without post-processing; defaults to the features."""
        return self.extract_feat(images)

    def optimize_for_inference(self) -> "Detector":
        """Make this eval-mode detector faster for inference with the same outputs up to float rounding
        (e.g. fold BatchNorms into convolutions); the result may no longer train. Default: unchanged."""
        return self.eval()
