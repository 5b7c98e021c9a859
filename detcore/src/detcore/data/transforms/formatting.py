"""The last step of every pipeline: pack ``results`` into a typed ``DetSample`` (`003` §4.1.3)."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from detcore.errors import DataError
from detcore.interfaces.data import Transform
from detcore.structures import DetSample, ImageMeta, Instances

# results keys copied into ImageMeta.extra when present.
DEFAULT_EXTRA_KEYS = ("ori_filename", "img_norm_cfg", "scale", "keep_ratio", "pad_fixed_size", "pad_size_divisor")


def _plain(tensor: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A plain ``torch.Tensor`` (not a tv_tensor subclass), optionally cast."""
    out = torch.as_tensor(tensor).as_subclass(torch.Tensor)
    return out.to(dtype) if dtype is not None else out


class PackDetInputs(Transform):
    """Format ``results`` into a ``DetSample``: float32 (3, H, W) image, ``ImageMeta`` and ``Instances``.

    ``gt`` gets boxes, labels and (when present) bool masks and keypoints (``gt_keypoints``,
    (N, K, 3) x, y, visibility); ``ignored`` the ignore boxes and their labels; ``proposals`` the
    proposal boxes (and scores); ``gt_seg_map`` (the semantic map of ``LoadAnnotations(with_seg=True)``,
    as in MMDetection 3) becomes ``sample.gt_sem_seg`` (int64). ``meta_keys`` lists further ``results``
    keys to copy into ``meta.extra``.
    """

    def __init__(self, meta_keys: Sequence[str] = ()) -> None:
        self.meta_keys = tuple(meta_keys)

    def __call__(self, results: dict[str, Any]) -> DetSample:
        if "img" not in results:
            raise DataError(f"PackDetInputs: image {results.get('img_id')} has no 'img'; add LoadImageFromFile first")
        image = _plain(results["img"], torch.float32).contiguous()
        size = (int(image.shape[-2]), int(image.shape[-1]))
        img_shape = tuple(results.get("img_shape", size))
        extra = {k: results[k] for k in (*DEFAULT_EXTRA_KEYS, *self.meta_keys) if k in results}
        meta = ImageMeta(
            ori_shape=tuple(results.get("ori_shape", img_shape)),
            img_shape=img_shape,
            pad_shape=tuple(results.get("pad_shape", size)),
            scale_factor=tuple(float(v) for v in results.get("scale_factor", (1.0, 1.0))),
            flip=bool(results.get("flip", False)),
            flip_direction=results.get("flip_direction"),
            file_name=str(results["filename"]) if "filename" in results else None,
            image_id=results.get("img_id"),
            extra=extra,
        )
        gt = None
        if "gt_bboxes" in results:
            fields: dict[str, torch.Tensor] = {"boxes": _plain(results["gt_bboxes"], torch.float32)}
            if "gt_labels" in results:
                fields["labels"] = _plain(results["gt_labels"], torch.int64)
            if "gt_masks" in results:
                fields["masks"] = _plain(results["gt_masks"]).bool()
            if "gt_keypoints" in results:
                fields["keypoints"] = _plain(results["gt_keypoints"], torch.float32)
            gt = Instances(size, **fields)
        ignored = None
        if "gt_bboxes_ignore" in results:
            fields = {"boxes": _plain(results["gt_bboxes_ignore"], torch.float32)}
            if "gt_labels_ignore" in results:
                fields["labels"] = _plain(results["gt_labels_ignore"], torch.int64)
            ignored = Instances(size, **fields)
        proposals = None
        if results.get("proposals") is not None and not isinstance(results["proposals"], (list,)):
            fields = {"boxes": _plain(results["proposals"], torch.float32).reshape(-1, 4)}
            if "proposal_scores" in results:
                fields["scores"] = _plain(results["proposal_scores"], torch.float32)
            proposals = Instances(size, **fields)
        gt_sem_seg = None
        if "gt_seg_map" in results:
            gt_sem_seg = _plain(results["gt_seg_map"], torch.int64)
            if gt_sem_seg.ndim != 2:
                raise DataError(
                    f"PackDetInputs: image {results.get('img_id')} has a gt_seg_map of shape "
                    f"{tuple(gt_sem_seg.shape)}; expected (H, W) class indices"
                )
        return DetSample(image=image, meta=meta, gt=gt, ignored=ignored, proposals=proposals, gt_sem_seg=gt_sem_seg)

    def __repr__(self) -> str:
        return f"PackDetInputs(meta_keys={self.meta_keys})"
