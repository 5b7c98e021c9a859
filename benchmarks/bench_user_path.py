"""The user's path against torchvision with the same weights: image file in, detections out, CPU.

Inference (800 x 1333 PNG, batch 1) for RetinaNet, FCOS, Faster R-CNN and Mask R-CNN:
- detcore: ``init_detector(config, checkpoint, precision=...)`` + ``inference_detector(model, path)``, i.e. the
  defaults a user gets (fast path: BatchNorms folded, channels-last; ``inference_mode``), in fp32 and bf16;
- torchvision: ``decode_image(path)`` + ``model([image])`` in fp32 (its eval transform and
  post-processing included).
Training (RetinaNet, FCOS, Faster R-CNN): one SGD step on two 512 x 512 images, detcore fp32 and bf16 autocast
against torchvision's fp32 ``model(images, targets)``.

Every ratio is ours / torchvision from paired, alternating runs (``timing.paired_times``), so load changes hit
both sides. The weights are seeded, with class biases spread so the detections are confident and varied;
bf16 agreement counts the fp32 detections bf16 keeps (same label, IoU >= 0.9, score within 0.02).
Run on a quiet machine: ``python benchmarks/bench_user_path.py``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.io import decode_image
from torchvision.models import resnet50
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops import FrozenBatchNorm2d

import bench_single_stage
import bench_two_stage
from det_common.parity import match_rate
from detcore.apis import inference_detector, init_detector
from detcore.checkpoint import save_checkpoint
from detcore.config import load_config
from detcore.registry import build, get_component
from detcore.structures import Batch, ImageMeta, Instances
from timing import paired_times

CONFIGS = {
    "retinanet": ("retinanet_resnet50_fpn_torchvision", "torchvision.retinanet_resnet50_fpn"),
    "fcos": ("fcos_resnet50_fpn_torchvision", "torchvision.fcos_resnet50_fpn"),
    "faster_rcnn": ("faster_rcnn_resnet50_fpn_torchvision", "torchvision.fasterrcnn_resnet50_fpn"),
    "mask_rcnn": ("mask_rcnn_resnet50_fpn_torchvision", "torchvision.maskrcnn_resnet50_fpn"),
}
TRAINED = ("retinanet", "fcos", "faster_rcnn")


def torchvision_model(arch: str) -> nn.Module:
    """torchvision's model as its pretrained builder makes it, seeded, with spread class biases."""
    if arch in ("retinanet", "fcos"):
        model = bench_single_stage.torchvision_model(arch)
        with torch.no_grad():
            model.head.classification_head.cls_logits.bias.normal_(-2.0, 1.5)
        return model
    if arch == "faster_rcnn":
        return bench_two_stage.torchvision_model()
    torch.manual_seed(0)
    model = MaskRCNN(_resnet_fpn_extractor(resnet50(weights=None, norm_layer=FrozenBatchNorm2d), 3), num_classes=91)
    with torch.no_grad():
        model.rpn.head.cls_logits.weight.normal_(0.0, 0.05)
        model.roi_heads.box_predictor.cls_score.bias.copy_(torch.randn(91) * 3.0)
    return model


def converted_checkpoint(arch: str, tv: nn.Module, folder: Path) -> Path:
    """torchvision's weights in detcore's layout, saved as a checkpoint file for ``init_detector``."""
    converted, unplaced = get_component("converters", CONFIGS[arch][1])(tv.state_dict())
    if unplaced:
        raise RuntimeError(f"{CONFIGS[arch][1]} could not place {unplaced}")
    path = folder / f"{arch}.pth"
    save_checkpoint(path, {"state_dict": converted})
    return path


def test_image(folder: Path) -> Path:
    """An 800 x 1333 PNG of smooth colour blobs (so neither side resizes it; lossless, so both decode the same
    pixels)."""
    rng = np.random.default_rng(0)
    coarse = rng.random((3, 25, 42)).astype(np.float32)
    image = torch.nn.functional.interpolate(torch.from_numpy(coarse)[None], size=(800, 1333), mode="bilinear")[0]
    path = folder / "image.png"
    Image.fromarray((image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(path)
    return path


def bench_inference(arch: str, folder: Path, image: Path, repeats: int, bf16_repeats: int) -> dict[str, float]:
    tv = torchvision_model(arch).eval()
    checkpoint = converted_checkpoint(arch, tv, folder)
    config = CONFIGS[arch][0]
    fp32 = init_detector(config, checkpoint)

    def torchvision_path() -> list[dict[str, torch.Tensor]]:
        pixels = decode_image(str(image)).float() / 255
        with torch.inference_mode():
            return tv([pixels])

    ours32, theirs = inference_detector(fp32, image), torchvision_path()[0]
    offset = 1 if arch in ("faster_rcnn", "mask_rcnn") else 0  # R-CNN outputs count background as class 0
    reference = Instances(boxes=theirs["boxes"], scores=theirs["scores"], labels=theirs["labels"] - offset)
    t32, t_tv = paired_times(lambda: inference_detector(fp32, image), torchvision_path, repeats)
    ratios = {"fp32": t32 / t_tv}
    bf16_text = ""
    if bf16_repeats > 0:
        bf16 = init_detector(config, checkpoint, precision="bf16")
        ratios["bf16_kept"] = match_rate(ours32, inference_detector(bf16, image), iou_thr=0.9, score_tol=0.02,
                                         mask_iou_thr=0.0)
        t16, t_tv2 = paired_times(lambda: inference_detector(bf16, image), torchvision_path, bf16_repeats)
        ratios["bf16"] = t16 / t_tv2
        bf16_text = (f" | detcore bf16 {t16 * 1000:6.0f} ms, ratio {t16 / t_tv2:.2f} (target <= 0.4); bf16 keeps "
                     f"{ratios['bf16_kept']:.2f} of the fp32 detections")
    print(f"{arch:11s} inference: torchvision fp32 {t_tv * 1000:6.0f} ms | detcore fp32 {t32 * 1000:6.0f} ms, "
          f"ratio {t32 / t_tv:.2f} (target <= 0.8) | fp32 matches torchvision "
          f"{match_rate(reference, ours32, mask_iou_thr=0.0):.2f} of {len(reference)}{bf16_text}")
    return ratios


def training_batch(size: int, label_offset: int) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]], Batch]:
    """Two size x size images with four boxes each, for torchvision (images, targets) and for detcore (Batch, labels
    ``label_offset`` lower: R-CNN heads count torchvision's background class 0, detcore's do not)."""
    gen = torch.Generator().manual_seed(2)
    images = [torch.rand(3, size, size, generator=gen) for _ in range(2)]
    targets = bench_two_stage.training_targets(2, size)
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    metas = [ImageMeta(ori_shape=(size, size), img_shape=(size, size), pad_shape=(size, size))] * 2
    batch = Batch(images=torch.stack([(image - mean) / std for image in images]), metas=metas)
    batch.gt = [Instances(boxes=t["boxes"], labels=t["labels"] - label_offset) for t in targets]
    return images, targets, batch


def bench_training(arch: str, size: int, repeats: int, bf16_repeats: int) -> dict[str, float]:
    tv = torchvision_model(arch)
    tv.transform.min_size, tv.transform.max_size = (size,), size
    converted, _ = get_component("converters", CONFIGS[arch][1])(tv.state_dict())
    ours = build("detectors", load_config(CONFIGS[arch][0])["model"])
    ours.load_state_dict(converted, strict=True)
    images, targets, batch = training_batch(size, 1 if arch == "faster_rcnn" else 0)
    tv.train()
    ours.train()
    tv_opt = torch.optim.SGD([p for p in tv.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
    our_opt = torch.optim.SGD([p for p in ours.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)

    def step(losses: Callable[[], dict[str, torch.Tensor]], opt: torch.optim.Optimizer) -> None:
        values = losses()
        opt.zero_grad()
        # detcore also logs accuracies (keys without "loss"); torchvision returns only losses, named otherwise
        total = sum(v for k, v in values.items() if "loss" in k or opt is tv_opt)
        total.backward()
        opt.step()

    def ours_bf16() -> dict[str, torch.Tensor]:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return ours.loss(batch)

    t32, t_tv = paired_times(lambda: step(lambda: ours.loss(batch), our_opt), lambda: step(lambda: tv(images, targets), tv_opt), repeats)
    bf16_text, ratios = "", {"fp32": t32 / t_tv}
    if bf16_repeats > 0:
        t16, t_tv2 = paired_times(lambda: step(ours_bf16, our_opt), lambda: step(lambda: tv(images, targets), tv_opt),
                                  bf16_repeats)
        bf16_text, ratios["bf16"] = f" | detcore bf16 AMP {t16 * 1000:6.0f} ms, ratio {t16 / t_tv2:.2f} (target <= 0.6)", t16 / t_tv2
    print(f"{arch:11s} train step 2x{size}x{size}: torchvision fp32 {t_tv * 1000:6.0f} ms | detcore fp32 "
          f"{t32 * 1000:6.0f} ms, ratio {t32 / t_tv:.2f}{bf16_text}")
    return ratios


def cpu_flags() -> str:
    """The CPU model and its AVX-512 / AMX flags (what bf16 speed depends on)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    wanted = [f for f in flags if f.startswith(("avx512", "amx"))]
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{model}, torch CPU capability {capability}; {' '.join(wanted) or 'no AVX-512 / AMX flags: bf16 is emulated'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=[*CONFIGS, "all"], default="all")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bf16-repeats", type=int, default=3,
                        help="repeats of the bf16 timings; 0 skips bf16 (timings and agreement): it is emulated, and "
                        "slow, on CPUs without AVX-512 BF16")
    parser.add_argument("--train-size", type=int, default=512)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {cpu_flags()}")
    archs = list(CONFIGS) if args.arch == "all" else [args.arch]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        image = test_image(folder)
        for arch in archs:
            bench_inference(arch, folder, image, args.repeats, args.bf16_repeats)
    if not args.skip_training:
        for arch in [a for a in archs if a in TRAINED]:
            bench_training(arch, args.train_size, args.repeats, args.bf16_repeats)


if __name__ == "__main__":
    main()
