"""Faster R-CNN: detcore vs torchvision with the same weights, CPU latency ratios (ours / torchvision).

Inference: one 800 x 1333 image, batch 1, ``torch.inference_mode``; detcore's model is prepared with
``optimize_for_inference()`` (frozen BN folded into the convs, channels-last) and its detections are
matched against torchvision's. Training: one SGD step (forward, backward, update) on two images of
``--train-size``. torchvision's model is built as its pretrained builder makes it (FrozenBatchNorm2d,
conv1 + layer1 frozen); both sides get the same preprocessed tensors (torchvision's transform is not timed).
Run: ``OMP_NUM_THREADS=2 python benchmarks/bench_two_stage.py``.
"""

from __future__ import annotations

import argparse
import copy
from typing import Callable

import torch
from torch import nn
from torchvision.models import resnet50
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import FrozenBatchNorm2d, box_iou

from detcore.config import load_config
from detcore.registry import build, get_component
from detcore.structures import Batch, ImageMeta, Instances
from timing import paired_times

CONFIG = "faster_rcnn_resnet50_fpn_torchvision"
CONVERTER = "torchvision.fasterrcnn_resnet50_fpn"


def torchvision_model() -> nn.Module:
    """fasterrcnn_resnet50_fpn as built for pretrained weights, with seeded random weights and spread class biases."""
    torch.manual_seed(0)
    body = resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
    model = FasterRCNN(_resnet_fpn_extractor(body, 3), num_classes=91)
    with torch.no_grad():
        model.rpn.head.cls_logits.weight.normal_(0.0, 0.05)
        model.roi_heads.box_predictor.cls_score.bias.copy_(torch.randn(91) * 3.0)
    return model


def twin(tv: nn.Module) -> nn.Module:
    converted, unplaced = get_component("converters", CONVERTER)(tv.state_dict())
    if unplaced:
        raise RuntimeError(f"{CONVERTER} could not place {unplaced}")
    model = build("detectors", load_config(CONFIG)["model"])
    model.load_state_dict(converted, strict=True)
    return model


def torchvision_detect(tv: nn.Module, images: ImageList) -> list[dict[str, torch.Tensor]]:
    """torchvision's eval forward after its transform (the input tensors are shared with detcore)."""
    features = tv.backbone(images.tensors)
    proposals, _ = tv.rpn(images, features)
    detections, _ = tv.roi_heads(features, proposals, images.image_sizes)
    return detections


def matched_fraction(ref: dict[str, torch.Tensor], ours: Instances) -> float:
    """Share of reference detections with a same-class detection of IoU >= 0.99 and score within 1e-3."""
    if len(ref["boxes"]) == 0:
        return 1.0 if len(ours) == 0 else 0.0
    iou = box_iou(ref["boxes"], ours.boxes).nan_to_num(0.0)
    ok = (iou >= 0.99) & (ref["labels"][:, None] == ours.labels[None] + 1)
    ok &= (ref["scores"][:, None] - ours.scores[None]).abs() <= 1e-3
    return float(ok.any(dim=1).float().mean())


def prepared_inputs(tv: nn.Module, height: int, width: int, num: int, seed: int) -> tuple[ImageList, Batch]:
    gen = torch.Generator().manual_seed(seed)
    images = [torch.rand(3, height, width, generator=gen) for _ in range(num)]
    image_list, _ = tv.transform(images)
    metas = [
        ImageMeta(ori_shape=(h, w), img_shape=(h, w), pad_shape=tuple(image_list.tensors.shape[-2:]))
        for h, w in image_list.image_sizes
    ]
    return image_list, Batch(images=image_list.tensors, metas=metas)


def bench_inference(repeats: int) -> float:
    tv = torchvision_model().eval()
    ours = twin(tv).eval()
    image_list, batch = prepared_inputs(tv, 800, 1333, 1, seed=0)
    with torch.inference_mode():
        fast = copy.deepcopy(ours).optimize_for_inference()
        plain_dets = ours.predict(batch, rescale=False)
        fast_dets = fast.predict(batch, rescale=False)
        reference = torchvision_detect(tv, image_list)
        parity = matched_fraction(reference[0], plain_dets[0])
        parity_fast = matched_fraction(reference[0], fast_dets[0])
        t_ours, t_tv = paired_times(
            lambda: fast.predict(batch, rescale=False),
            lambda: torchvision_detect(tv, image_list),
            repeats,
        )
    print(f"faster_rcnn inference {tuple(batch.images.shape[-2:])}: torchvision {t_tv * 1000:7.0f} ms  "
          f"detcore {t_ours * 1000:7.0f} ms  ratio {t_ours / t_tv:.2f}  (target <= 0.8; "
          f"{len(reference[0]['boxes'])} torchvision detections matched: {parity:.3f} plain, {parity_fast:.3f} optimised)")
    return t_ours / t_tv


def training_targets(num: int, size: int) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    targets = []
    for _ in range(num):
        xy = torch.rand(4, 2, generator=gen) * size * 0.6
        wh = 32 + torch.rand(4, 2, generator=gen) * size * 0.3
        targets.append({"boxes": torch.cat([xy, xy + wh], dim=1), "labels": torch.randint(1, 91, (4,), generator=gen)})
    return targets


def bench_training(size: int, repeats: int, channels_last: bool = False) -> float:
    tv = torchvision_model()
    ours = twin(tv)
    tv.transform.min_size, tv.transform.max_size = (size,), size
    image_list, batch = prepared_inputs(tv, size, size, 2, seed=2)
    targets = training_targets(2, size)
    batch.gt = [Instances(boxes=t["boxes"], labels=t["labels"] - 1) for t in targets]

    def tv_losses() -> dict[str, torch.Tensor]:
        features = tv.backbone(image_list.tensors)
        proposals, rpn_losses = tv.rpn(image_list, features, targets)
        _, roi_losses = tv.roi_heads(features, proposals, image_list.image_sizes, targets)
        return {**rpn_losses, **roi_losses}

    def step(loss_fn: Callable[[], dict[str, torch.Tensor]], opt: torch.optim.Optimizer) -> None:
        losses = loss_fn()
        opt.zero_grad()
        sum(v for k, v in losses.items() if "loss" in k).backward()
        opt.step()

    if channels_last:  # what the runner's channels_last option does
        ours.to(memory_format=torch.channels_last)
        batch.images = batch.images.contiguous(memory_format=torch.channels_last)
    tv.train()
    ours.train()
    tv_opt = torch.optim.SGD([p for p in tv.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
    our_opt = torch.optim.SGD([p for p in ours.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
    t_ours, t_tv = paired_times(
        lambda: step(lambda: ours.loss(batch), our_opt),
        lambda: step(tv_losses, tv_opt),
        repeats,
    )
    layout = " (channels_last)" if channels_last else ""
    print(f"faster_rcnn train step 2x{size}x{size}: torchvision {t_tv * 1000:7.0f} ms  detcore{layout} "
          f"{t_ours * 1000:7.0f} ms  ratio {t_ours / t_tv:.2f}  (target <= 1.0)")
    return t_ours / t_tv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=512)
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-inference", action="store_true")
    parser.add_argument("--channels-last", action="store_true", help="train ours in NHWC (runner option channels_last)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if not args.skip_inference:
        bench_inference(args.repeats)
    if not args.skip_training:
        bench_training(args.train_size, args.repeats, args.channels_last)


if __name__ == "__main__":
    main()
