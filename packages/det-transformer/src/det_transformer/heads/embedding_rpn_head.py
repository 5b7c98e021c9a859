"""Sparse R-CNN's proposals (Sun et al. 2021, "Sparse R-CNN: End-to-End Object Detection with Learnable Proposals"):
a fixed set of learned boxes and features, the same for every image, instead of a region proposal network."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from det_common.bbox.transforms import bbox_cxcywh_to_xyxy
from detcore.interfaces import DenseHead
from detcore.structures import Batch, ImageMeta, Instances


class EmbeddingRPNHead(DenseHead):
    """``num_proposals`` learned boxes (``init_proposal_bboxes``: cx, cy, w, h as fractions of the image, initially
    the whole image) and proposal features (``init_proposal_features``). It has no loss of its own: the RoI head's
    first stage trains both through the boxes it regresses from them and the features it reads."""

    def __init__(self, num_proposals: int = 100, proposal_feature_channel: int = 256, **cfgs: Any) -> None:
        super().__init__()
        unknown = set(cfgs) - {"train_cfg", "test_cfg", "proposal_cfg"}
        if unknown:
            raise TypeError(f"EmbeddingRPNHead: unknown options {sorted(unknown)}")
        self.num_proposals = num_proposals
        self.proposal_feature_channel = proposal_feature_channel
        self.init_proposal_bboxes = nn.Embedding(num_proposals, 4)
        self.init_proposal_features = nn.Embedding(num_proposals, proposal_feature_channel)
        nn.init.constant_(self.init_proposal_bboxes.weight[:, :2], 0.5)
        nn.init.constant_(self.init_proposal_bboxes.weight[:, 2:], 1.0)

    def forward(self, feats: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """The normalised (cx, cy, w, h) boxes (N, 4) and features (N, C); they do not depend on ``feats``."""
        return self.init_proposal_bboxes.weight, self.init_proposal_features.weight

    def loss(self, feats: Sequence[Tensor], batch: Batch) -> dict[str, Tensor]:
        """No loss: the proposals learn through the RoI head's losses."""
        return {}

    def predict(self, feats: Sequence[Tensor], metas: Sequence[ImageMeta], rescale: bool = False) -> list[Instances]:
        """Per image: ``boxes`` (N, 4) in network-input pixels of its ``img_shape`` and ``features`` (N, C).

        The boxes keep their gradient (the first RoI stage regresses from them); ``rescale`` does not apply.
        """
        boxes, features = self(feats)
        corners = bbox_cxcywh_to_xyxy(boxes)
        proposals = []
        for meta in metas:
            height, width = meta.img_shape[:2]
            scale = corners.new_tensor([width, height, width, height])
            proposals.append(Instances(tuple(meta.img_shape[:2]), boxes=corners * scale, features=features))
        return proposals
