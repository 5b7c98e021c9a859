"""MMDetection parity: read a reference fixture (seeded weights, image, mmdet's detections and losses) and
judge detcore's outputs against it.

A fixture folder holds ``recipe.json`` (how the large parameters are drawn), ``tensors.npz`` (every other
tensor), ``dets.npz`` (mmdet's detections), ``masks.json`` (COCO RLE per detection, for mask methods),
``losses.json`` and ``gt_masks.npz`` (mmdet's losses on known ground truth) and ``model.json`` (mmdet's
resolved config). The image lives in the ``images/`` folder beside the fixture folders.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from det_common.bbox import bbox_overlaps
from detcore.structures import Batch, Instances


class MMDetFixture:
    """One reference fixture folder made with MMDetection 3.3 (see the module docstring for its files)."""

    def __init__(self, folder: str | Path) -> None:
        self.dir = Path(folder)
        if not (self.dir / "recipe.json").is_file():
            raise FileNotFoundError(f"{self.dir} is not an MMDetection fixture folder (no recipe.json)")
        self.recipe: dict[str, Any] = json.loads((self.dir / "recipe.json").read_text())
        self.name = self.dir.name

    def state_dict(self) -> dict[str, Tensor]:
        """Every parameter and buffer in MMDetection's names: drawn ones rebuilt from their seed, the rest stored."""
        state: dict[str, Tensor] = {}
        for name, shape, mean, std in self.recipe["params"]:
            seed = (zlib.crc32(name.encode()) ^ (self.recipe["seed"] * 2654435761)) & 0x7FFFFFFF
            z = np.random.RandomState(seed).standard_normal(int(np.prod(shape))).reshape(shape)
            state[name] = torch.from_numpy(np.asarray(mean + std * z, dtype=np.float32))
        with np.load(self.dir / "tensors.npz") as stored:
            for name in stored.files:
                state[name] = torch.from_numpy(np.array(stored[name]))
        for alias, source in self.recipe.get("aliases", {}).items():
            state[alias] = state[source]
        return state

    def image(self) -> np.ndarray:
        """The input image, (H, W, 3) uint8 RGB."""
        from PIL import Image

        with Image.open(self.dir.parent / self.recipe["image"]) as img:
            return np.array(img.convert("RGB"))

    def detections(self) -> Instances:
        """mmdet's detections in input-image pixels: boxes, scores, labels (and masks, decoded from RLE)."""
        with np.load(self.dir / "dets.npz") as dets:
            found = Instances(
                tuple(self.recipe["image_hw"]),
                boxes=torch.from_numpy(np.array(dets["bboxes"], dtype=np.float32)).reshape(-1, 4),
                scores=torch.from_numpy(np.array(dets["scores"], dtype=np.float32)),
                labels=torch.from_numpy(np.array(dets["labels"], dtype=np.int64)),
            )
        masks_file = self.dir / "masks.json"
        if masks_file.is_file():
            from pycocotools import mask as mask_utils

            rles = json.loads(masks_file.read_text())
            height, width = self.recipe["image_hw"]
            if rles:
                decoded = mask_utils.decode([{"size": r["size"], "counts": r["counts"]} for r in rles])
                found.masks = torch.from_numpy(np.ascontiguousarray(decoded.transpose(2, 0, 1))).bool()
            else:
                found.masks = torch.zeros(0, height, width, dtype=torch.bool)
        return found

    def ground_truth(self) -> Instances:
        """The ground truth mmdet's losses were computed on: boxes, labels and masks in input-image pixels."""
        info = json.loads((self.dir / "losses.json").read_text())
        with np.load(self.dir / "gt_masks.npz") as packed:
            _, _, width = (int(v) for v in packed["shape"])
            masks = np.unpackbits(packed["masks"], axis=-1)[..., :width].astype(bool)
        return Instances(
            tuple(self.recipe["image_hw"]),
            boxes=torch.tensor(info["gt_boxes_xyxy"], dtype=torch.float32).reshape(-1, 4),
            labels=torch.tensor(info["gt_labels"], dtype=torch.long),
            masks=torch.from_numpy(masks),
        )

    def losses(self) -> tuple[dict[str, float], bool]:
        """mmdet's loss values and whether they are deterministic (only then comparable)."""
        info = json.loads((self.dir / "losses.json").read_text())
        return dict(info["losses"]), bool(info["deterministic"])


def summed_losses(losses: Mapping[str, float | Tensor]) -> dict[str, float]:
    """The entries as floats, plus the sum of per-level entries (``loss_cls.0``, ``loss_cls.1``, ...) as ``loss_cls``."""
    out = {name: float(value) for name, value in losses.items()}
    totals: dict[str, float] = {}
    for name, value in out.items():
        bare = re.sub(r"\.\d+$", "", name)
        if bare != name:
            totals[bare] = totals.get(bare, 0.0) + value
    return out | totals


def match_rate(
    ref: Instances,
    ours: Instances,
    iou_thr: float = 0.99,
    coord_tol: float = 0.05,
    score_tol: float = 1e-3,
    mask_iou_thr: float = 0.95,
) -> float:
    """Fraction of reference detections matched one to one by ours: same label, score within ``score_tol``,
    box IoU >= ``iou_thr`` (or every coordinate within ``coord_tol`` px, for zero-area boxes), and mask
    IoU >= ``mask_iou_thr`` when both carry masks."""
    if len(ref) == 0:
        return 1.0
    if len(ours) == 0:
        return 0.0
    ref_boxes, our_boxes = ref.boxes.double(), ours.boxes.double().cpu()
    iou = bbox_overlaps(ref_boxes, our_boxes)
    close = (ref_boxes[:, None] - our_boxes[None]).abs().amax(dim=-1) <= coord_tol
    same = (ref.labels[:, None] == ours.labels.cpu()[None]) & (
        (ref.scores[:, None].double() - ours.scores.cpu()[None].double()).abs() <= score_tol
    )
    ok = ((iou >= iou_thr) | close) & same
    if ref.has("masks") and ours.has("masks"):
        ok &= mask_ious(ref.masks, ours.masks.cpu()) >= mask_iou_thr
    used = torch.zeros(len(ours), dtype=torch.bool)
    matched = 0
    for i in range(len(ref)):
        candidates = (ok[i] & ~used).nonzero().flatten()
        if len(candidates):
            used[candidates[iou[i, candidates].argmax()]] = True
            matched += 1
    return matched / len(ref)


def mask_ious(a: Tensor, b: Tensor) -> Tensor:
    """(len(a), len(b)) IoU of two sets of (H, W) boolean masks; two empty masks have IoU 1."""
    fa, fb = a.flatten(1).float(), b.flatten(1).float()
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))


def load_fixture_model(config: str | Mapping[str, Any], fixture: MMDetFixture) -> nn.Module:
    """The detector of ``config`` in eval mode with the fixture's weights (MMDetection 3 names) loaded strictly."""
    from detcore.apis import init_detector

    model = init_detector(config, device="cpu", fast=False)  # the plain module takes the fixture's state dict
    model.load_state_dict(fixture.state_dict(), strict=True)
    return model.eval()


def load_fixture(folder: str | Path) -> tuple[MMDetFixture, nn.Module]:
    """The fixture in ``folder`` and, through detcore's config of the folder's name, the detector with its weights."""
    fixture = MMDetFixture(folder)
    return fixture, load_fixture_model(fixture.name, fixture)


def fixture_detections(config: str | Mapping[str, Any] | nn.Module, fixture: MMDetFixture) -> Instances:
    """detcore's detections on the fixture image: its weights loaded through ``config`` (or a model already
    loaded by ``load_fixture_model``), run in inference mode."""
    from detcore.apis import inference_detector

    model = config if isinstance(config, nn.Module) else load_fixture_model(config, fixture)
    with torch.inference_mode():
        return inference_detector(model, fixture.image())


def float64_detections(model: nn.Module, fixture: MMDetFixture) -> Instances:
    """detcore's detections with ``model`` converted to float64 (in place) on the fixture image normalised in
    float32 as always, then cast. Compared with MMDetection's float64 run on the same weights, this judges
    networks whose float32 detections depend on which CPU kernels ran (recursive or deformable ones with
    seeded weights): in float64 such a network's rounding no longer reaches the detections."""
    from detcore.apis.inference import prepare_batch

    batch = prepare_batch(model, fixture.image())
    batch.images = batch.images.double()
    model.double()
    with torch.inference_mode():
        return model.predict(batch, rescale=True)[0]


def fixture_losses(model: nn.Module, fixture: MMDetFixture) -> dict[str, float]:
    """detcore's losses on the fixture's ground truth, computed as the fixtures were: the model in training
    mode (heads such as FCOS with ``norm_on_bbox`` regress in strides then) with every norm, dropout and
    attention (its dropout) in eval."""
    batch = fixture_batch(model, fixture)
    was_training = model.training
    model.train()
    for module in model.modules():
        if isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.Dropout, nn.MultiheadAttention)):
            module.eval()
    try:
        with torch.no_grad():
            return {name: float(value) for name, value in model.loss(batch).items()}
    finally:
        model.train(was_training)


def loss_mismatches(model: nn.Module, fixture: MMDetFixture, rel_tol: float = 1e-4) -> dict[str, tuple[float, float]]:
    """``{name: (ours, mmdet's)}`` for every loss of ours not within ``rel_tol`` of the fixture's (per-level
    entries summed; a name mmdet lacks counts as a mismatch). The fixture's losses must be deterministic."""
    reference, deterministic = fixture.losses()
    if not deterministic:
        raise ValueError(f"fixture {fixture.name}: mmdet's losses sample at random, they cannot be compared")
    reference = summed_losses(reference)
    ours = fixture_losses(model, fixture)
    return {
        name: (value, reference.get(name, float("nan")))
        for name, value in ours.items()
        if not abs(value - reference.get(name, float("nan"))) <= rel_tol * abs(reference.get(name, float("nan")))
    }


def fixture_batch(model: nn.Module, fixture: MMDetFixture) -> Batch:
    """The fixture image through the model's test pipeline, with the fixture's ground truth attached."""
    from detcore.apis.inference import prepare_batch

    batch = prepare_batch(model, fixture.image())
    meta = batch.metas[0]
    if tuple(meta.img_shape) != tuple(fixture.recipe["image_hw"]):
        raise ValueError(
            f"fixture {fixture.name}: the test pipeline resized the image to {tuple(meta.img_shape)}; "
            "losses are compared on the unscaled image only"
        )
    gt = fixture.ground_truth()
    batch.gt = [Instances(tuple(meta.img_shape), **gt.fields())]
    return batch
