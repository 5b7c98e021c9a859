"""Loading steps (`003` §4.1.1): image pixels, annotations and proposals into ``results``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors

from detcore.data.images import read_image
from detcore.data.masks import segmentations_to_masks
from detcore.data.transforms.fields import make_boxes
from detcore.errors import BadImageError, DataError
from detcore.interfaces.data import Transform


class LoadImageFromFile(Transform):
    """Read ``results["filename"]`` as a (3, H, W) RGB ``tv_tensors.Image``.

    Adds ``img``, ``img_shape``, ``ori_shape``. EXIF orientation is applied; grey, RGBA and 16-bit
    images become RGB uint8; ``to_float32`` converts to float32 (same 0..255 range).
    """

    def __init__(self, to_float32: bool = False) -> None:
        self.to_float32 = to_float32

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        if "filename" not in results:
            raise DataError("LoadImageFromFile needs results['filename']; the dataset did not set it")
        pixels = torch.from_numpy(read_image(results["filename"]).copy()).permute(2, 0, 1).contiguous()
        self._check_size(results, pixels.shape[-2], pixels.shape[-1])
        if self.to_float32:
            pixels = pixels.float()
        out = dict(results)
        out["img"] = tv_tensors.Image(pixels)
        out["img_shape"] = tuple(pixels.shape[-2:])
        out["ori_shape"] = tuple(pixels.shape[-2:])
        out.setdefault("scale_factor", (1.0, 1.0))
        out.setdefault("bbox_fields", [])
        out.setdefault("mask_fields", [])
        out.setdefault("seg_fields", [])
        return out

    @staticmethod
    def _check_size(results: dict[str, Any], height: int, width: int) -> None:
        """The annotation's width / height must be the image's (boxes and masks are drawn on that canvas)."""
        info = results.get("img_info")
        if not isinstance(info, dict) or "width" not in info or "height" not in info:
            return
        if (int(info["width"]), int(info["height"])) != (width, height):
            raise BadImageError(
                f"image file {results['filename']} is {width}x{height} pixels (after EXIF rotation) but its "
                f"annotation (image id {results.get('img_id')}) says {int(info['width'])}x{int(info['height'])} "
                "(width x height); the annotations belong to another version of the image. Fix the width/height "
                "in the annotation file or replace the image"
            )

    def __repr__(self) -> str:
        return f"LoadImageFromFile(to_float32={self.to_float32})"


class LoadAnnotations(Transform):
    """Turn ``results["ann_info"]`` into box / label / mask / segmentation tensors.

    Adds ``gt_bboxes``, ``gt_bboxes_ignore``, ``gt_labels``, ``gt_labels_ignore``, ``gt_masks``
    (polygons and RLE decoded with pycocotools), ``gt_seg_map`` (MMDetection 3's name: the
    single-channel PNG ``seg_prefix / ann_info["seg_map"]``, class index per pixel, 255 = ignore)
    and registers them in ``bbox_fields`` / ``mask_fields`` / ``seg_fields``.
    """

    def __init__(
        self, with_bbox: bool = True, with_label: bool = True, with_mask: bool = False, with_seg: bool = False
    ) -> None:
        self.with_bbox = with_bbox
        self.with_label = with_label
        self.with_mask = with_mask
        self.with_seg = with_seg

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        ann = results.get("ann_info")
        if ann is None:
            raise DataError(
                f"LoadAnnotations: image {results.get('img_id')} ({results.get('filename')}) has no "
                "annotations; the dataset is in test_mode or the pipeline is a test pipeline"
            )
        out = dict(results)
        out["bbox_fields"] = list(results.get("bbox_fields", []))
        out["mask_fields"] = list(results.get("mask_fields", []))
        out["seg_fields"] = list(results.get("seg_fields", []))
        height, width = self._canvas(results)
        if self.with_bbox:
            out["gt_bboxes"] = make_boxes(ann["bboxes"], (height, width))
            out["gt_bboxes_ignore"] = make_boxes(ann.get("bboxes_ignore", np.zeros((0, 4))), (height, width))
            out["bbox_fields"] += [k for k in ("gt_bboxes", "gt_bboxes_ignore") if k not in out["bbox_fields"]]
        if self.with_label:
            out["gt_labels"] = torch.as_tensor(np.asarray(ann["labels"]), dtype=torch.int64).reshape(-1)
            ignore_labels = np.asarray(ann.get("labels_ignore", np.full(len(ann.get("bboxes_ignore", [])), -1)))
            out["gt_labels_ignore"] = torch.as_tensor(ignore_labels, dtype=torch.int64).reshape(-1)
        if self.with_mask:
            if "masks" not in ann:
                raise DataError(
                    f"LoadAnnotations(with_mask=True): image {results.get('img_id')} has no 'masks' in its "
                    "annotations; this dataset format has no instance masks"
                )
            bitmaps = segmentations_to_masks(ann["masks"], height, width)
            out["gt_masks"] = tv_tensors.Mask(torch.from_numpy(bitmaps))
            if "gt_masks" not in out["mask_fields"]:
                out["mask_fields"].append("gt_masks")
        if self.with_seg:
            out["gt_seg_map"] = self._load_seg(results, (height, width))
            if "gt_seg_map" not in out["seg_fields"]:
                out["seg_fields"].append("gt_seg_map")
        return out

    @staticmethod
    def _canvas(results: dict[str, Any]) -> tuple[int, int]:
        if "img" in results:
            return int(results["img"].shape[-2]), int(results["img"].shape[-1])
        info = results["img_info"]
        return int(info["height"]), int(info["width"])

    @staticmethod
    def _load_seg(results: dict[str, Any], canvas: tuple[int, int]) -> tv_tensors.Mask:
        seg_map = results["ann_info"].get("seg_map")
        if seg_map is None:
            raise DataError(
                f"LoadAnnotations(with_seg=True): image {results.get('img_id')} has no 'seg_map' in its annotations"
            )
        if not results.get("seg_prefix"):
            raise DataError(
                f"LoadAnnotations(with_seg=True): image {results.get('img_id')}: the dataset has no seg_prefix; "
                "set seg_prefix (the folder of the semantic maps, e.g. \"stuffthingmaps/train2017/\") in its config"
            )
        path = Path(results["seg_prefix"]) / seg_map
        from PIL import Image

        if not path.is_file():
            raise DataError(f"segmentation map {path} of image {results.get('img_id')} does not exist")
        with Image.open(path) as image:
            if image.mode not in ("L", "P"):
                raise DataError(
                    f"segmentation map {path} has PIL mode {image.mode}; expected a single-channel PNG "
                    "(mode L or P) holding one class index per pixel"
                )
            labels = np.asarray(image, dtype=np.uint8)
        if labels.shape != canvas:
            raise DataError(
                f"segmentation map {path} is {labels.shape[1]}x{labels.shape[0]} but image "
                f"{results.get('img_id')} is {canvas[1]}x{canvas[0]} (width x height)"
            )
        return tv_tensors.Mask(torch.from_numpy(labels.copy()))

    def __repr__(self) -> str:
        return (
            f"LoadAnnotations(with_bbox={self.with_bbox}, with_label={self.with_label}, "
            f"with_mask={self.with_mask}, with_seg={self.with_seg})"
        )


class LoadProposals(Transform):
    """Turn ``results["proposals"]`` ((K, 4) or (K, 5) with scores) into boxes (+ ``proposal_scores``).

    ``num_max_proposals`` keeps the first K proposals (they are stored best first).
    """

    def __init__(self, num_max_proposals: int | None = None) -> None:
        self.num_max_proposals = num_max_proposals

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        if results.get("proposals") is None:
            raise DataError(
                f"LoadProposals: image {results.get('img_id')} has no proposals; give the dataset a proposal_file"
            )
        raw = torch.as_tensor(np.asarray(results["proposals"], dtype=np.float32))
        if raw.ndim != 2 or raw.shape[1] not in (4, 5):
            raise DataError(
                f"LoadProposals: proposals of image {results.get('img_id')} have shape {tuple(raw.shape)}; "
                "expected (K, 4) or (K, 5)"
            )
        if self.num_max_proposals is not None:
            raw = raw[: self.num_max_proposals]
        height, width = LoadAnnotations._canvas(results)
        out = dict(results)
        out["proposals"] = make_boxes(raw[:, :4], (height, width))
        if raw.shape[1] == 5:
            out["proposal_scores"] = raw[:, 4].clone()
        out["bbox_fields"] = list(results.get("bbox_fields", []))
        if "proposals" not in out["bbox_fields"]:
            out["bbox_fields"].append("proposals")
        return out

    def __repr__(self) -> str:
        return f"LoadProposals(num_max_proposals={self.num_max_proposals})"
