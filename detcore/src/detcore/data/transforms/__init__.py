"""Pipeline transforms (manual `003` §4.1) operating on the ``results`` dict.

Internal representation, shared by every transform:

* ``img``: ``tv_tensors.Image`` (3, H, W), RGB; uint8 after loading, float32 in the 0..255 range
  after photometric transforms, float32 normalised after ``Normalize``.
* ``gt_bboxes``, ``gt_bboxes_ignore``, ``proposals``: ``tv_tensors.BoundingBoxes`` XYXY float32
  whose ``canvas_size`` is the image's (H, W); their keys are listed in ``results["bbox_fields"]``.
* ``gt_masks``: ``tv_tensors.Mask`` (N, H, W) uint8 (listed in ``mask_fields``);
  ``gt_seg_map``: ``tv_tensors.Mask`` (H, W) uint8 class indices, 255 = ignore (listed in ``seg_fields``).
* ``gt_keypoints``: (N, K, 3) float x, y, visibility, packed into ``gt.keypoints``; the geometric
  transforms that would move them (resize, flip, crop, expand) refuse them for now.
* ``gt_labels``: int64 tensor (N,); ``gt_labels_ignore`` likewise for the ignored boxes.

Geometric transforms apply one ``torchvision.transforms.v2.functional`` kernel to the image and
every registered field, so boxes and masks move with the pixels.
"""

from detcore.data.transforms.compose import Compose, build_pipeline

__all__ = ["Compose", "build_pipeline"]
