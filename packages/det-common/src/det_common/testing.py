"""Test helpers shared by the families: torchvision parity checks, synthetic batches, a short training loop."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from detcore.structures import Batch, ImageMeta, Instances
from det_common.bbox import bbox_overlaps


def smooth_images(sizes: Sequence[tuple[int, int]], seed: int) -> list[Tensor]:
    """Images in [0, 1] with blobs at several scales, so detections differ across locations."""
    gen = torch.Generator().manual_seed(seed)
    images = []
    for h, w in sizes:
        image = torch.zeros(3, h, w)
        for cells in (4, 12, 40):
            coarse = torch.rand(1, 3, cells, cells, generator=gen)
            image += nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0]
        images.append(image / 3)
    return images


def batch_from_transform(tv_model: nn.Module, images: list[Tensor]) -> Batch:
    """torchvision's resized, normalised, padded batch with the metadata a detcore model needs."""
    image_list, _ = tv_model.transform(images)
    metas = []
    for image, (h, w) in zip(images, image_list.image_sizes):
        oh, ow = image.shape[-2:]
        metas.append(ImageMeta(ori_shape=(oh, ow), img_shape=(h, w), pad_shape=tuple(image_list.tensors.shape[-2:]),
                               scale_factor=(w / ow, h / oh)))
    return Batch(images=image_list.tensors, metas=metas)


def match_detections(ref: dict[str, Tensor], ours: Instances, iou_thr: float = 0.99, score_tol: float = 1e-3) -> float:
    """Fraction of reference detections matched one to one by ours: same label, |score diff| <= score_tol and
    IoU >= iou_thr (or, for boxes clipped to zero area at the border, corners within 0.01 pixel)."""
    if len(ref["boxes"]) == 0:
        return 1.0
    iou = bbox_overlaps(ref["boxes"], ours.boxes)
    corners_close = (ref["boxes"][:, None] - ours.boxes[None]).abs().amax(dim=-1) <= 0.01
    same = (ref["labels"][:, None] == ours.labels[None]) & ((ref["scores"][:, None] - ours.scores[None]).abs() <= score_tol)
    ok = ((iou >= iou_thr) | corners_close) & same
    used = torch.zeros(len(ours), dtype=torch.bool)
    matched = 0
    for i in range(len(ref["boxes"])):
        candidates = (ok[i] & ~used).nonzero().flatten()
        if len(candidates):
            used[candidates[iou[i, candidates].argmax()]] = True
            matched += 1
    return matched / len(ref["boxes"])


def metas_for(images: Tensor) -> list[ImageMeta]:
    height, width = images.shape[-2:]
    return [ImageMeta(ori_shape=(height, width), img_shape=(height, width), pad_shape=(height, width))] * images.shape[0]


def painted_batch() -> Batch:
    """Two fixed 128x160 noise images upsampled x2 from 64x80 originals, with their ground-truth boxes painted
    bright (three objects of classes 0-2): a small, deterministic batch for the heads' training tests."""
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 128, 160, generator=gen)
    gts = [
        Instances(boxes=torch.tensor([[10.0, 20.0, 70.0, 90.0], [80.0, 30.0, 150.0, 120.0]]),
                  labels=torch.tensor([0, 2])),
        Instances(boxes=torch.tensor([[30.0, 10.0, 60.0, 50.0]]), labels=torch.tensor([1])),
    ]
    for image, gt in zip(images, gts):
        for box in gt.boxes.long():
            image[:, box[1]:box[3], box[0]:box[2]] = 0.9
    metas = [ImageMeta(ori_shape=(64, 80), img_shape=(128, 160), pad_shape=(128, 160), scale_factor=(2.0, 2.0))] * 2
    return Batch(images=images, metas=metas, gt=gts)


def synthetic_batch(generator: torch.Generator, num_images: int = 2, size: tuple[int, int] = (128, 160),
                    num_classes: int = 3, with_masks: bool = False) -> Batch:
    """Bright rectangles (class = colour channel) on a dark background, with their boxes (and masks) as ground truth."""
    height, width = size
    images = torch.randn(num_images, 3, height, width, generator=generator) * 0.05
    gts = []
    for i in range(num_images):
        boxes, labels = [], []
        for _ in range(3):
            w = int(torch.randint(24, 64, (1,), generator=generator))
            h = int(torch.randint(24, 64, (1,), generator=generator))
            x = int(torch.randint(0, width - w, (1,), generator=generator))
            y = int(torch.randint(0, height - h, (1,), generator=generator))
            label = int(torch.randint(0, num_classes, (1,), generator=generator))
            images[i, label % 3, y : y + h, x : x + w] += 2.0
            boxes.append([x, y, x + w, y + h])
            labels.append(label)
        gt = Instances((height, width), boxes=torch.tensor(boxes, dtype=torch.float32),
                       labels=torch.tensor(labels, dtype=torch.long))
        if with_masks:
            masks = torch.zeros(len(boxes), height, width, dtype=torch.bool)
            for k, (x1, y1, x2, y2) in enumerate(boxes):
                masks[k, y1:y2, x1:x2] = True
            gt.masks = masks
        gts.append(gt)
    return Batch(images=images, metas=metas_for(images), gt=gts)


def train_steps(model: torch.nn.Module, batch, steps: int, lr: float) -> list[dict[str, float]]:
    """``steps`` SGD steps on one batch; per step, every logged value and the summed loss (``total``)."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=0.9)
    model.train()
    history = []
    for _ in range(steps):
        losses = model.loss(batch)
        total = sum(v for k, v in losses.items() if "loss" in k)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append({k: float(v.detach()) for k, v in losses.items()} | {"total": float(total.detach())})
    return history


@dataclass
class FastPathCheck:
    """The plain model against its ``optimize_for_inference`` copy: the largest difference of their raw network
    outputs (``forward_tensor``) relative to the output's magnitude, and both models' detections."""

    output_error: float
    plain: Instances
    fast: Instances


def check_fast_path(model: nn.Module, image, scale: tuple[int, int] | None = (667, 400)) -> FastPathCheck:
    """Run ``model`` (eval, as built) and a copy prepared by ``optimize_for_inference`` on ``image``; ``scale``
    replaces the test pipeline's Resize scale to keep the check cheap."""
    import copy

    from detcore.apis import inference_detector, prepare_batch

    plain = copy.deepcopy(model).eval()
    if scale is not None:
        steps = [dict(step) for step in plain.test_pipeline_cfg]
        for step in steps:
            if step.get("type") == "Resize":
                step["scale"] = list(scale)
        plain.test_pipeline_cfg = steps
    fast = copy.deepcopy(plain).optimize_for_inference()
    images = prepare_batch(plain, image).images
    with torch.inference_mode():
        pairs = zip(_tensors(plain.forward_tensor(images)), _tensors(fast.forward_tensor(images)), strict=True)
        error = max(float((a - b).abs().max() / a.abs().max().clamp(min=1.0)) for a, b in pairs)
    return FastPathCheck(error, inference_detector(plain, image), inference_detector(fast, image))


def _tensors(outputs) -> list[Tensor]:
    """Every tensor of nested tuples / lists / dicts, in order."""
    if isinstance(outputs, Tensor):
        return [outputs]
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    return [t for item in outputs for t in _tensors(item)]


def assert_fast_path_matches(fixture_folder, with_masks: bool = False) -> None:
    """On an MMDetection fixture (its seeded weights and image), the fast path's raw outputs are within 1e-3 of
    the plain model's (relative to their magnitude) and its detections match by the parity rule. Seeded weights
    give many near-tied scores and tiny boxes that float rounding may reorder at the top-k and NMS cut-offs,
    hence 95% of the detections rather than all."""
    from det_common.parity import load_fixture, match_rate

    torch.manual_seed(0)
    fixture, model = load_fixture(fixture_folder)
    check = check_fast_path(model, fixture.image())
    assert check.output_error <= 1e-3, f"outputs differ by {check.output_error:.2e} relative"
    assert len(check.plain) > 0 and (check.plain.has("masks") or not with_masks)
    assert match_rate(check.plain, check.fast) >= 0.95
