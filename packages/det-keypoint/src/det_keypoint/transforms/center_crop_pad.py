"""RandomCenterCropPad: CornerNet's and CenterNet's crop-and-pad augmentation and their test-time padding
(Law and Deng, "CornerNet"; Zhou et al., "Objects as Points").

Training: a crop of ``crop_size`` times a random ratio, centred on a random point at least ``border`` from the
image edges, is cut out and pasted at the centre of a canvas filled with ``mean``; objects whose centre leaves
the crop are dropped. Testing: the whole image is pasted at the centre of a canvas grown to
``(size | pad_value) + test_pad_add_pix`` ("logical_or") or to multiples of ``pad_value`` ("size_divisor").
Either way ``results["border"]`` = (top, bottom, left, right) of the image inside the canvas; pack it with
``PackDetInputs(meta_keys=["border"])`` so the keypoint heads map boxes back to the image.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

import torch
from torchvision import tv_tensors

from detcore.data.transforms.fields import keep_instances, make_boxes
from detcore.errors import ConfigError, DataError
from detcore.interfaces.data import Transform

_PAD_MODES = ("logical_or", "size_divisor")


class RandomCenterCropPad(Transform):
    """Crop around a random centre and pad to a canvas (training), or pad around the centre (``test_mode``).

    ``mean`` fills the canvas (0..255 pixels, RGB; our images are RGB already, so ``to_rgb`` only keeps
    MMDetection's argument); ``std`` is accepted for the same reason. Boxes move with the pixels.
    """

    def __init__(
        self,
        crop_size: Sequence[int] | None = None,
        ratios: Sequence[float] | None = None,
        border: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        to_rgb: bool | None = None,
        test_mode: bool = False,
        test_pad_mode: Sequence[Any] | None = ("logical_or", 127),  # MMDetection's default
        test_pad_add_pix: int = 0,
        bbox_clip_border: bool = True,
    ) -> None:
        if test_mode:
            if crop_size is not None or ratios is not None or border is not None:
                raise ConfigError("RandomCenterCropPad: test_mode pads the whole image; remove crop_size, ratios, border")
            if test_pad_mode is None or test_pad_mode[0] not in _PAD_MODES:
                raise ConfigError(f"RandomCenterCropPad: test_pad_mode must be [mode, value] with mode in {_PAD_MODES}, "
                                  f"got {test_pad_mode!r}")
        elif crop_size is None:
            raise ConfigError("RandomCenterCropPad: training needs crop_size (or set test_mode = true)")
        elif ratios is None or border is None:
            ratios, border = ratios or (0.9, 1.0, 1.1), 128 if border is None else border
        if mean is None or len(mean) != 3:
            raise ConfigError(f"RandomCenterCropPad: mean needs 3 values (the canvas colour), got {mean!r}")
        self.crop_size = tuple(crop_size) if crop_size is not None else None
        self.ratios = tuple(ratios) if ratios is not None else None
        self.border = border
        self.mean = [float(v) for v in mean]
        self.std = std
        self.to_rgb = to_rgb
        self.test_mode = test_mode
        self.test_pad_mode = tuple(test_pad_mode) if test_pad_mode is not None else None
        self.test_pad_add_pix = test_pad_add_pix
        self.bbox_clip_border = bbox_clip_border

    def __call__(self, results: dict[str, Any]) -> dict[str, Any] | None:
        if "img" not in results:
            raise DataError("RandomCenterCropPad needs results['img']; put LoadImageFromFile before it")
        if any(k in results for k in ("gt_masks", "gt_seg_map", "gt_keypoints")):
            raise DataError("RandomCenterCropPad moves only images and boxes; this image also has masks, seg maps "
                            "or keypoints")
        height, width = (int(v) for v in results["img"].shape[-2:])
        if self.test_mode:
            mode, value = self.test_pad_mode
            if mode == "logical_or":
                size = ((height | value) + self.test_pad_add_pix, (width | value) + self.test_pad_add_pix)
            else:
                size = (-(-height // value) * value, -(-width // value) * value)
            return self._paste(results, (height // 2, width // 2), size)
        return self._train(results, height, width)

    def _train(self, results: dict[str, Any], height: int, width: int) -> dict[str, Any]:
        boxes = results.get("gt_bboxes")
        for _ in range(50):
            scale = random.choice(self.ratios)
            size = (int(self.crop_size[0] * scale), int(self.crop_size[1] * scale))
            h_border, w_border = _border(self.border, height), _border(self.border, width)
            center = (random.randint(h_border, height - h_border - 1), random.randint(w_border, width - w_border - 1))
            out = self._paste(results, center, size, crop=True)
            if boxes is None or len(boxes) == 0 or len(out["gt_bboxes"]) > 0:
                return out
        return results

    def _paste(self, results: dict[str, Any], center: tuple[int, int], size: tuple[int, int],
               crop: bool = False) -> dict[str, Any]:
        """The ``size`` window around ``center`` of the image, pasted at the centre of a ``mean`` canvas."""
        img = results["img"].as_subclass(torch.Tensor)
        height, width = img.shape[-2:]
        cy, cx = center
        target_h, target_w = size
        x0, x1 = max(0, cx - target_w // 2), min(cx + target_w // 2, width)
        y0, y1 = max(0, cy - target_h // 2), min(cy + target_h // 2, height)
        left, top = cx - x0, cy - y0
        paste_x, paste_y = target_w // 2 - left, target_h // 2 - top
        canvas = torch.tensor(self.mean, dtype=img.dtype)[:, None, None].repeat(1, target_h, target_w)
        canvas[:, paste_y : paste_y + y1 - y0, paste_x : paste_x + x1 - x0] = img[:, y0:y1, x0:x1]
        out = dict(results)
        out["img"] = tv_tensors.Image(canvas)
        out["img_shape"] = (target_h, target_w)
        out["pad_shape"] = (target_h, target_w)
        out["border"] = [float(paste_y), float(paste_y + y1 - y0), float(paste_x), float(paste_x + x1 - x0)]
        shift = torch.tensor([paste_x - x0, paste_y - y0, paste_x - x0, paste_y - y0], dtype=torch.float32)
        for key in results.get("bbox_fields", []):
            if key not in results:
                continue
            moved = results[key].as_subclass(torch.Tensor) + shift
            if crop and key == "gt_bboxes":
                centers = (results[key].as_subclass(torch.Tensor)[:, :2] + results[key].as_subclass(torch.Tensor)[:, 2:]) / 2
                inside = (centers[:, 0] > x0) & (centers[:, 0] < x1) & (centers[:, 1] > y0) & (centers[:, 1] < y1)
                out = keep_instances(out, inside)
                moved = moved[inside]
            if self.bbox_clip_border:
                moved[:, 0::2] = moved[:, 0::2].clamp(0, target_w)
                moved[:, 1::2] = moved[:, 1::2].clamp(0, target_h)
            out[key] = make_boxes(moved, (target_h, target_w))
        return out

    def __repr__(self) -> str:
        return (f"RandomCenterCropPad(crop_size={self.crop_size}, ratios={self.ratios}, border={self.border}, "
                f"mean={self.mean}, test_mode={self.test_mode}, test_pad_mode={self.test_pad_mode})")


def _border(border: int, size: int) -> int:
    """The largest of ``border``, ``border / 2``, ``border / 4``, ... that leaves room for a centre in ``size``."""
    i = 1
    while size - border // i <= border // i:
        i *= 2
    return border // i
