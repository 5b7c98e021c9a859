"""The ONNX export seam of two-stage detectors (Faster / Mask R-CNN): the network in three graphs, with the
proposal selection between them and the final NMS left to detcore's own code.

``features``: images -> the feature levels the RoI stage pools from (``feat<i>``) and the RPN's raw per-level
maps (``rpn_cls<i>``, ``rpn_reg<i>``); ``rcnn``: features and RoIs (K, 5) -> the box head's ``cls_score``
and ``bbox_pred`` (RoIAlign is in the graph, through torchvision's ONNX RoiAlign); ``mask`` (with a mask head):
features and the detections' RoIs -> ``mask_logits``. Image size, batch and RoI count are dynamic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from detcore.errors import ConfigError
from detcore.structures import Batch, Instances

from det_common.bbox import bbox2roi
from det_common.heads.dense_structures import DenseOutputs
from det_common.heads.roi.base_roi_head import detection_rois

if TYPE_CHECKING:
    from detcore.tools.onnx_export import GraphRunner, OnnxGraph

#: RoI sides (pixels) of the example RoIs the RoI graphs are traced with: every FPN level gets some, so the
#: traced graph pools from every level whatever RoIs it is given later
EXAMPLE_ROI_SIDES = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)


class _Features(nn.Module):
    def __init__(self, detector: nn.Module, num_levels: int) -> None:
        super().__init__()
        self.detector, self.num_levels = detector, num_levels

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        feats = self.detector.extract_feat(images)
        rpn = self.detector.rpn_head(feats)
        return (*feats[: self.num_levels], *rpn.cls_scores, *rpn.bbox_preds)


class _RoIBranch(nn.Module):
    """``roi_head.bbox_forward`` (box) or ``roi_head.mask_forward`` (mask) of the one stage, on (*feats, rois)."""

    def __init__(self, roi_head: nn.Module, branch: str) -> None:
        super().__init__()
        self.roi_head, self.branch = roi_head, branch

    def forward(self, *inputs: Tensor) -> Any:
        feats, rois = inputs[:-1], inputs[-1]
        if self.branch == "mask":
            return self.roi_head.mask_forward(0, feats, rois).logits
        out = self.roi_head.bbox_forward(0, feats, rois)
        return out.cls_score, out.bbox_pred


def _check_exportable(detector: nn.Module) -> None:
    roi_head = detector.roi_head
    if detector.rpn_head is None or roi_head is None:
        raise ConfigError(f"export onnx: {type(detector).__name__} needs an rpn_head and a roi_head to be exported "
                          "(Fast R-CNN reads proposals from files)")
    if roi_head.num_stages != 1 or isinstance(roi_head.bbox_head, nn.ModuleList):
        raise ConfigError(f"export onnx: {type(roi_head).__name__} has {roi_head.num_stages} stages; only one-stage RoI "
                          "heads (Faster / Mask R-CNN's StandardRoIHead) are exported")


def _example_rois(extractor: nn.Module, feat: Tensor) -> Tensor:
    """RoIs at the image origin with every side of ``EXAMPLE_ROI_SIDES``; checks that they reach every level."""
    sides = torch.tensor(EXAMPLE_ROI_SIDES, dtype=feat.dtype, device=feat.device)
    rois = torch.stack([torch.zeros_like(sides), torch.zeros_like(sides), torch.zeros_like(sides), sides, sides], 1)
    levels = set(extractor.map_roi_levels(rois).tolist()) if hasattr(extractor, "map_roi_levels") else {0}
    if len(levels) < getattr(extractor, "num_inputs", 1):
        raise ConfigError(f"export onnx: the example RoIs reach levels {sorted(levels)} of {type(extractor).__name__}"
                          f"'s {extractor.num_inputs}; a traced graph would skip the others")
    return rois


def two_stage_graphs(detector: nn.Module, images: Tensor) -> list["OnnxGraph"]:
    """The ``features``, ``rcnn`` (and ``mask``) graphs of a Faster / Mask R-CNN, traced on ``images``."""
    from detcore.tools.onnx_export import OnnxGraph

    _check_exportable(detector)
    roi_head = detector.roi_head
    num_levels = roi_head.bbox_roi_extractor.num_inputs
    features = _Features(detector, num_levels)
    outputs = features(images)
    num_rpn = (len(outputs) - num_levels) // 2
    names = ([f"feat{i}" for i in range(num_levels)] + [f"rpn_cls{i}" for i in range(num_rpn)]
             + [f"rpn_reg{i}" for i in range(num_rpn)])
    dynamic = {"images": {0: "batch", 2: "height", 3: "width"}}
    dynamic.update({name: {0: "batch", 2: f"{name}_h", 3: f"{name}_w"} for name in names})
    graphs = [OnnxGraph("features", features, (images,), ["images"], names, dynamic)]
    feats = tuple(outputs[:num_levels])
    feat_names = names[:num_levels]
    roi_inputs = {name: dynamic[name] for name in feat_names} | {"rois": {0: "num_rois"}}
    rois = _example_rois(roi_head.bbox_roi_extractor, feats[0])
    graphs.append(OnnxGraph("rcnn", _RoIBranch(roi_head, "bbox"), (*feats, rois), [*feat_names, "rois"],
                            ["cls_score", "bbox_pred"],
                            roi_inputs | {"cls_score": {0: "num_rois"}, "bbox_pred": {0: "num_rois"}}))
    if roi_head.with_mask:
        extractor = roi_head.bbox_roi_extractor if roi_head.mask_roi_extractor is None else roi_head.mask_roi_extractor
        rois = _example_rois(extractor, feats[0])
        graphs.append(OnnxGraph("mask", _RoIBranch(roi_head, "mask"), (*feats, rois), [*feat_names, "rois"],
                                ["mask_logits"], roi_inputs | {"mask_logits": {0: "num_rois"}}))
    return graphs


def predict_with_graphs(detector: nn.Module, run: "GraphRunner", batch: Batch) -> list[Instances]:
    """Detections (original pixels) from the exported graphs: the RPN's proposal selection, the box head's
    decoding and NMS and the mask pasting are the detector's own code, between and after the graphs."""
    roi_head = detector.roi_head
    outs = run("features", {"images": batch.images})
    feats = {name: value for name, value in outs.items() if name.startswith("feat")}
    rpn = DenseOutputs(_levels(outs, "rpn_cls"), _levels(outs, "rpn_reg"))
    proposals = detector.rpn_head.predict_by_feat(rpn, batch.metas, rescale=False)
    rois = bbox2roi([p.boxes[:, :4] for p in proposals])
    box = run("rcnn", {**feats, "rois": rois})
    results = roi_head.bbox_detections(rois, box["cls_score"], box["bbox_pred"], [len(p) for p in proposals],
                                       batch.metas, rescale=True)
    if not roi_head.with_mask:
        return results
    rois = detection_rois(results, batch.metas, rescale=True)
    probs: list[Tensor | None] = [None] * len(results)
    if rois.shape[0] > 0:
        labels = torch.cat([dets.labels for dets in results])
        logits = run("mask", {**feats, "rois": rois})["mask_logits"]
        probs = list(roi_head.mask_head.class_probs(logits, labels).split([len(d) for d in results]))
    return roi_head.paste_masks(results, probs, batch.metas, rescale=True)


def _levels(outs: dict[str, Tensor], prefix: str) -> list[Tensor]:
    return [outs[f"{prefix}{i}"] for i in range(sum(name.startswith(prefix) for name in outs))]
