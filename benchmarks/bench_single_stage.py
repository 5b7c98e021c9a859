"""RetinaNet and FCOS: detcore vs torchvision with the same weights, CPU latency ratios (ours / torchvision).

Inference: one 800 x 1333 image, batch 1, ``torch.inference_mode``; detcore's model is prepared with
``optimize_for_inference()`` (frozen BN folded into the convs, channels-last) and its detections are
checked against the unoptimised model's. Training: one SGD step (forward, backward, update) on a
batch of two images of ``--train-size``. Both sides use torchvision's deployed layout (frozen BN,
conv1 + layer1 frozen). Run: ``OMP_NUM_THREADS=2 python benchmarks/bench_single_stage.py``.
"""

from __future__ import annotations

import argparse
import copy
from typing import Callable

import torch
from torch import nn
from torchvision.models import resnet50
from torchvision.models.detection import FCOS, RetinaNet
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.retinanet import _default_anchorgen
from torchvision.ops import FrozenBatchNorm2d, box_iou
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from detcore.config import load_config
from detcore.registry import build, get_component
from detcore.structures import Batch, ImageMeta, Instances
from timing import paired_times

ARCHS = {
    "retinanet": ("retinanet_resnet50_fpn_torchvision", "torchvision.retinanet_resnet50_fpn"),
    "fcos": ("fcos_resnet50_fpn_torchvision", "torchvision.fcos_resnet50_fpn"),
}


def torchvision_model(arch: str) -> nn.Module:
    """torchvision's model exactly as its pretrained builder makes it (FrozenBatchNorm2d, 3 trainable stages)."""
    torch.manual_seed(0)
    body = resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
    backbone = _resnet_fpn_extractor(body, 3, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
    if arch == "retinanet":
        return RetinaNet(backbone, 91, anchor_generator=_default_anchorgen())
    return FCOS(backbone, 91)


def twin(arch: str, tv: nn.Module) -> nn.Module:
    config, converter = ARCHS[arch]
    converted, unplaced = get_component("converters", converter)(tv.state_dict())
    if unplaced:
        raise RuntimeError(f"{converter} could not place {unplaced}")
    model = build("detectors", load_config(config)["model"])
    model.load_state_dict(converted, strict=True)
    return model


def torchvision_detect(tv: nn.Module, images: ImageList) -> list[dict[str, torch.Tensor]]:
    """torchvision's eval forward after its transform (the input tensors are shared with detcore)."""
    features = list(tv.backbone(images.tensors).values())
    head_outputs = tv.head(features)
    anchors = tv.anchor_generator(images, features)
    sizes = [x.size(2) * x.size(3) for x in features]
    if isinstance(tv, RetinaNet):
        sizes = [s * head_outputs["cls_logits"].size(1) // sum(sizes) for s in sizes]
    split = {k: list(v.split(sizes, dim=1)) for k, v in head_outputs.items()}
    split_anchors = [list(a.split(sizes)) for a in anchors]
    return tv.postprocess_detections(split, split_anchors, images.image_sizes)


def matched_fraction(ref: dict[str, torch.Tensor], ours: Instances) -> float:
    """Share of reference detections with a same-label detection of IoU >= 0.99 and score within 1e-3."""
    if len(ref["boxes"]) == 0:
        return 1.0 if len(ours) == 0 else 0.0
    iou = box_iou(ref["boxes"], ours.boxes).nan_to_num(0.0)
    ok = (iou >= 0.99) & (ref["labels"][:, None] == ours.labels[None])
    ok &= (ref["scores"][:, None] - ours.scores[None]).abs() <= 1e-3
    return float(ok.any(dim=1).float().mean())


def prepared_inputs(tv: nn.Module, height: int, width: int, num: int, seed: int) -> tuple[ImageList, Batch]:
    gen = torch.Generator().manual_seed(seed)
    images = [torch.rand(3, height, width, generator=gen) for _ in range(num)]
    image_list, _ = tv.transform(images)
    metas = [
        ImageMeta(ori_shape=(height, width), img_shape=(h, w), pad_shape=tuple(image_list.tensors.shape[-2:]),
                  scale_factor=(w / width, h / height))
        for h, w in image_list.image_sizes
    ]
    return image_list, Batch(images=image_list.tensors, metas=metas)


def bench_inference(arch: str, repeats: int) -> float:
    tv = torchvision_model(arch).eval()
    ours = twin(arch, tv).eval()
    image_list, batch = prepared_inputs(tv, 800, 1333, 1, seed=0)
    with torch.inference_mode():
        plain = ours.forward_tensor(batch.images)
        fast = copy.deepcopy(ours).optimize_for_inference()
        for plain_maps, fast_maps in zip(plain, fast.forward_tensor(batch.images)):
            for a, b in zip(plain_maps, fast_maps):  # folding BN only changes float rounding
                torch.testing.assert_close(b, a, atol=1e-3, rtol=1e-3)
        optimised = fast.predict(batch)
        reference = torchvision_detect(tv, image_list)
        parity = matched_fraction(reference[0], optimised[0])
        t_ours, t_tv = paired_times(
            lambda: fast.predict(batch),
            lambda: torchvision_detect(tv, image_list),
            repeats,
        )
    print(f"{arch:9s} inference 800x1333: torchvision {t_tv * 1000:7.0f} ms  detcore {t_ours * 1000:7.0f} ms  "
          f"ratio {t_ours / t_tv:.2f}  (detections matched {parity:.3f}, {len(reference[0]['boxes'])} dets)")
    return t_ours / t_tv


def training_targets(num: int, size: int) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    targets = []
    for _ in range(num):
        xy = torch.rand(4, 2, generator=gen) * size * 0.6
        wh = 32 + torch.rand(4, 2, generator=gen) * size * 0.3
        targets.append({"boxes": torch.cat([xy, xy + wh], dim=1), "labels": torch.randint(1, 91, (4,), generator=gen)})
    return targets


def bench_training(arch: str, size: int, repeats: int, channels_last: bool = False) -> float:
    tv = torchvision_model(arch)
    ours = twin(arch, tv)
    tv.transform.min_size, tv.transform.max_size = (size,), size
    image_list, batch = prepared_inputs(tv, size, size, 2, seed=2)
    targets = training_targets(2, size)
    batch.gt = [Instances(boxes=t["boxes"], labels=t["labels"]) for t in targets]

    def step(model: nn.Module, loss_fn: Callable[[], dict[str, torch.Tensor]], opt: torch.optim.Optimizer) -> None:
        losses = loss_fn()
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()

    def tv_losses() -> dict[str, torch.Tensor]:
        features = list(tv.backbone(image_list.tensors).values())
        head_outputs = tv.head(features)
        anchors = tv.anchor_generator(image_list, features)
        if isinstance(tv, RetinaNet):
            return tv.compute_loss(targets, head_outputs, anchors)
        return tv.compute_loss(targets, head_outputs, anchors, [x.size(2) * x.size(3) for x in features])

    if channels_last:  # what the runner's channels_last option does
        ours.to(memory_format=torch.channels_last)
        batch.images = batch.images.contiguous(memory_format=torch.channels_last)
    tv.train()
    ours.train()
    tv_opt = torch.optim.SGD([p for p in tv.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
    our_opt = torch.optim.SGD([p for p in ours.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
    t_ours, t_tv = paired_times(
        lambda: step(ours, lambda: ours.loss(batch), our_opt),
        lambda: step(tv, tv_losses, tv_opt),
        repeats,
    )
    layout = " (channels_last)" if channels_last else ""
    print(f"{arch:9s} train step 2x{size}x{size}: torchvision {t_tv * 1000:7.0f} ms  detcore{layout} {t_ours * 1000:7.0f} ms  "
          f"ratio {t_ours / t_tv:.2f}")
    return t_ours / t_tv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=[*ARCHS, "all"], default="all")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=512)
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-inference", action="store_true")
    parser.add_argument("--channels-last", action="store_true", help="train ours in NHWC (runner option channels_last)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for arch in ARCHS if args.arch == "all" else [args.arch]:
        if not args.skip_inference:
            bench_inference(arch, args.repeats)
        if not args.skip_training:
            bench_training(arch, args.train_size, args.repeats, args.channels_last)


if __name__ == "__main__":
    main()
