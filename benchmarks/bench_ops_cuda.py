"""det-ops-cuda compiled CPU kernels against their baselines, on realistic sizes (one run, medians).

Targets (issue 5): nms and roi_align at most 1.0x the time of torchvision's CPU ops; multi-scale deformable
attention and corner pooling at least 5x faster than the pure-PyTorch reference; deform conv compared with
torchvision's deform_conv2d. Prints each timing and the ratio ours / baseline (below 1 = ours faster).
Run: python benchmarks/bench_ops_cuda.py [--quick]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torchvision

from det_ops_cuda import backend as ours
from detcore.ops import reference
from timing import paired_times


def report(name: str, fn_ours: Callable[[], object], fn_base: Callable[[], object], repeats: int, baseline: str,
           target: str) -> None:
    t_ours, t_base = paired_times(fn_ours, fn_base, repeats)
    print(f"{name:<44} ours {t_ours * 1000:9.2f} ms   {baseline:<22} {t_base * 1000:9.2f} ms   "
          f"ratio ours/base {t_ours / t_base:6.3f}  (speed-up {t_base / t_ours:6.2f}x; target {target})", flush=True)


def boxes_scores(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Detector-like candidates: clustered boxes on an 1333x800 image."""
    centres = torch.rand(n // 20 + 1, 2, generator=g) * torch.tensor([1333.0, 800.0])
    c = centres[torch.randint(0, centres.shape[0], (n,), generator=g)] + torch.randn(n, 2, generator=g) * 8
    wh = torch.rand(n, 2, generator=g) * 150 + 16
    return torch.cat([c - wh / 2, c + wh / 2], 1), torch.rand(n, generator=g)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    reps = 3 if args.quick else 7
    g = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, threads {torch.get_num_threads()}")
    with torch.no_grad():
        # NMS: RPN-like 6000 proposals, and per-class 5000 detections
        boxes, scores = boxes_scores(6000, g)
        report("nms (6000 boxes, iou 0.7)", lambda: ours.nms(boxes, scores, 0.7),
               lambda: torchvision.ops.nms(boxes, scores, 0.7), reps, "torchvision.ops.nms", "<= 1.0")
        idxs = torch.randint(0, 80, (5000,), generator=g)
        b5, s5 = boxes[:5000], scores[:5000]
        report("batched_nms (5000 boxes, 80 classes, 0.5)", lambda: ours.batched_nms(b5, s5, idxs, 0.5),
               lambda: torchvision.ops.batched_nms(b5, s5, idxs, 0.5), reps, "torchvision batched_nms",
               "<= 1.0")

        # RoIAlign: Faster R-CNN box head, 2 images x 512 RoIs on a stride-8 256-channel map
        feat = torch.randn(2, 256, 100, 168, generator=g)
        rb, _ = boxes_scores(1024, g)
        rois = torch.cat([torch.randint(0, 2, (1024, 1), generator=g).float(), rb], 1)
        report("roi_align (1024 RoIs, 256ch, 7x7, sr 2)",
               lambda: ours.roi_align(feat, rois, 7, 0.125, 2, True),
               lambda: torchvision.ops.roi_align(feat, rois, 7, 0.125, 2, True), reps,
               "torchvision roi_align", "<= 1.0")
        report("roi_align adaptive (1024 RoIs, 256ch, 7x7, sr 0)",
               lambda: ours.roi_align(feat, rois, 7, 0.125, 0, True),
               lambda: torchvision.ops.roi_align(feat, rois, 7, 0.125, 0, True), reps,
               "torchvision roi_align", "<= 1.0")

        # Deformable DETR encoder: 4 levels of a 800x1066 image (stride 8..64), 8 heads x 32, 4 points
        shapes = torch.tensor([[100, 134], [50, 67], [25, 34], [13, 17]])
        areas = shapes[:, 0] * shapes[:, 1]
        starts = torch.cat([areas.new_zeros(1), areas.cumsum(0)[:-1]])
        s_total, q = int(areas.sum()), int(areas.sum())
        value = torch.randn(1, s_total, 8, 32, generator=g)
        # as in the model: each query samples around its own reference point (its pixel centre), a few pixels away
        ref = torch.cat([torch.stack(torch.meshgrid((torch.arange(int(h)) + 0.5) / int(h), (torch.arange(int(w)) + 0.5) / int(w),
                                                    indexing="ij")[::-1], -1).reshape(-1, 2) for h, w in shapes.tolist()])
        wh = shapes.flip(1).to(torch.float32)  # (W, H) per level
        loc = ref[None, :, None, None, None, :] + torch.randn(1, q, 8, 4, 4, 2, generator=g) * 2.0 / wh[None, None, None, :, None, :]
        attn = torch.rand(1, q, 8, 4, 4, generator=g).softmax(-1)
        report(f"msda forward (encoder, {q} queries)",
               lambda: ours.multi_scale_deformable_attention(value, shapes, starts, loc, attn),
               lambda: reference.multi_scale_deformable_attention(value, shapes, starts, loc, attn), reps,
               "reference (PyTorch)", ">= 5x speed-up")

        # CornerNet: 2 images x 128 channels on a 128x128 map, all four directions
        fmap = torch.randn(2, 128, 128, 128, generator=g)
        modes = ("top", "bottom", "left", "right")
        report("corner_pool (2x128x128x128, 4 modes)",
               lambda: [ours.corner_pool(fmap, m) for m in modes],
               lambda: [reference.corner_pool(fmap, m) for m in modes], reps,
               "reference (PyTorch)", ">= 5x speed-up")

        # DCN in a ResNet stage: 2 x 256 x 50 x 68 input, 3x3, 256 -> 256
        x = torch.randn(2, 256, 50, 68, generator=g)
        w = torch.randn(256, 256, 3, 3, generator=g) * 0.02
        off = torch.randn(2, 18, 50, 68, generator=g)
        mask = torch.rand(2, 9, 50, 68, generator=g)
        report("deform_conv2d v2 (2x256x50x68, 3x3)",
               lambda: ours.deform_conv2d(x, off, w, padding=1, mask=mask),
               lambda: torchvision.ops.deform_conv2d(x, off, w, padding=1, mask=mask), reps,
               "torchvision deform_conv2d", "compare")

    # training direction: forward + backward
    value.requires_grad_()
    loc.requires_grad_()
    attn.requires_grad_()

    def msda_train(impl):
        return lambda: impl.multi_scale_deformable_attention(value, shapes, starts, loc, attn).sum().backward()

    report("msda forward+backward (encoder)", msda_train(ours), msda_train(reference), max(reps // 2, 1),
           "reference (PyTorch)", ">= 5x speed-up")
    fmap.requires_grad_()
    report("corner_pool forward+backward (4 modes)",
           lambda: sum(ours.corner_pool(fmap, m).sum() for m in modes).backward(),
           lambda: sum(reference.corner_pool(fmap, m).sum() for m in modes).backward(), reps,
           "reference (PyTorch)", ">= 5x speed-up")
    x.requires_grad_()
    w.requires_grad_()
    off.requires_grad_()
    report("deform_conv2d v2 forward+backward",
           lambda: ours.deform_conv2d(x, off, w, padding=1, mask=mask).sum().backward(),
           lambda: torchvision.ops.deform_conv2d(x, off, w, padding=1, mask=mask).sum().backward(),
           max(reps // 2, 1), "torchvision deform_conv2d", "compare")


if __name__ == "__main__":
    main()
