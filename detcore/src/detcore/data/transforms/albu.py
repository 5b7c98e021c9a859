"""``Albu``: a pipeline of albumentations transforms (Buslaev et al., "Albumentations: Fast and Flexible Image
Augmentations", 2020) applied to the image and every box, mask and semantic map, keeping them aligned.

Optional extra: ``pip install 'detcore[albu]'``. Configs take MMDetection's layout: ``transforms`` is a list of
``{type = "<albumentations class>", ...}`` tables (nested ``transforms`` for ``OneOf`` and the like),
``bbox_params`` a ``{type = "BboxParams", ...}`` table. Objects an albumentations step drops (cropped out,
under ``min_visibility``) leave together with their labels and masks: detcore tracks each box by its index
rather than through ``label_fields``, which it fills itself.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torchvision import tv_tensors

from detcore.data.transforms.fields import make_boxes
from detcore.errors import ConfigError
from detcore.interfaces.data import Transform
from detcore.optional import require

INDEX_FIELD = "detcore_box_index"


class Albu(Transform):
    """Apply ``A.Compose(transforms)`` to ``img``, ``gt_bboxes`` (+ ``gt_bboxes_ignore``), ``gt_masks`` and
    ``gt_seg_map``. ``skip_img_without_anno`` drops an image left with no box; ``update_pad_shape`` sets
    ``pad_shape`` to the new size. ``keymap`` (MMDetection's key renaming) is accepted and not needed."""

    def __init__(
        self,
        transforms: Sequence[Mapping[str, Any]],
        bbox_params: Mapping[str, Any] | None = None,
        keymap: Mapping[str, str] | None = None,
        update_pad_shape: bool = False,
        skip_img_without_anno: bool = False,
    ) -> None:
        self.albu = require("albumentations", "albu", "the Albu transform")
        self.transforms_cfg = [dict(t) for t in transforms]
        params = dict(bbox_params or {"type": "BboxParams", "format": "pascal_voc"})
        params.pop("type", None)
        params.pop("filter_lost_elements", None)  # always done, by box index
        if params.setdefault("format", "pascal_voc") != "pascal_voc":
            raise ConfigError(f"Albu: bbox_params.format must be 'pascal_voc' (x1, y1, x2, y2 pixels), got {params['format']!r}")
        params["label_fields"] = [INDEX_FIELD]
        params.setdefault("clip", True)
        self.aug = self.albu.Compose([self._build(t) for t in self.transforms_cfg],
                                     bbox_params=self.albu.BboxParams(**params))
        self.update_pad_shape = update_pad_shape
        self.skip_img_without_anno = skip_img_without_anno

    def _build(self, cfg: Mapping[str, Any]) -> Any:
        cfg = dict(cfg)
        name = cfg.pop("type", None)
        if not isinstance(name, str) or not hasattr(self.albu, name):
            raise ConfigError(f"Albu: {name!r} is not an albumentations transform (albumentations "
                              f"{getattr(self.albu, '__version__', '?')}); see its documentation for names")
        if "transforms" in cfg:
            cfg["transforms"] = [self._build(t) for t in cfg["transforms"]]
        return getattr(self.albu, name)(**cfg)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any] | None:
        img = results["img"].as_subclass(torch.Tensor)
        image = img.permute(1, 2, 0).numpy()
        if image.dtype != np.uint8:
            image = image.astype(np.float32)
        boxes = results["gt_bboxes"].as_subclass(torch.Tensor).numpy() if "gt_bboxes" in results else np.zeros((0, 4))
        ignored = (results["gt_bboxes_ignore"].as_subclass(torch.Tensor).numpy()
                   if "gt_bboxes_ignore" in results else np.zeros((0, 4)))
        all_boxes = np.concatenate([boxes, ignored]).astype(np.float32)
        data: dict[str, Any] = {"image": np.ascontiguousarray(image), "bboxes": all_boxes,
                                INDEX_FIELD: np.arange(len(all_boxes))}
        if "gt_masks" in results and len(results["gt_masks"]):
            data["masks"] = [m.numpy().astype(np.uint8) for m in results["gt_masks"].as_subclass(torch.Tensor)]
        if "gt_seg_map" in results:
            data["mask"] = results["gt_seg_map"].as_subclass(torch.Tensor).numpy()
        out_data = self.aug(**data)

        out = dict(results)
        new_img = torch.from_numpy(np.ascontiguousarray(out_data["image"])).permute(2, 0, 1).contiguous()
        out["img"] = tv_tensors.Image(new_img if img.dtype == torch.uint8 else new_img.to(img.dtype))
        hw = (int(new_img.shape[-2]), int(new_img.shape[-1]))
        out["img_shape"] = hw
        if self.update_pad_shape:
            out["pad_shape"] = hw
        index = np.asarray(out_data[INDEX_FIELD], dtype=np.int64).reshape(-1)
        new_boxes = np.asarray(out_data["bboxes"], dtype=np.float32).reshape(-1, 4)
        kept, kept_ignored = index < len(boxes), index >= len(boxes)
        keep = torch.from_numpy(index[kept])
        if "gt_bboxes" in results:
            out["gt_bboxes"] = make_boxes(new_boxes[kept], hw)
            if "gt_labels" in results:
                out["gt_labels"] = results["gt_labels"][keep]
        if "gt_bboxes_ignore" in results:
            out["gt_bboxes_ignore"] = make_boxes(new_boxes[kept_ignored], hw)
            if "gt_labels_ignore" in results:
                out["gt_labels_ignore"] = results["gt_labels_ignore"][torch.from_numpy(index[kept_ignored] - len(boxes))]
        if "gt_masks" in results:
            masks = np.stack(out_data["masks"]) if data.get("masks") else np.zeros((0, *hw), np.uint8)
            out["gt_masks"] = tv_tensors.Mask(torch.from_numpy(masks[index[kept]].astype(bool)))
        if "gt_seg_map" in results:
            out["gt_seg_map"] = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(out_data["mask"])))
        if self.skip_img_without_anno and "gt_bboxes" in results and not kept.any():
            return None
        return out

    def __repr__(self) -> str:
        return f"Albu(transforms={self.transforms_cfg})"
