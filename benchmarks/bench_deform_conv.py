"""detcore's reference deformable convolution on CPU (grid_sample + matmul) against torchvision.ops.deform_conv2d.

Times forward + backward (gradients of input, offset, mask, weight, bias) on the shapes of this project's CPU
trainings (shapes configs: 128 channels at P3 of a 160 px image, batch 8) and of an R-50 COCO head level, the two
functions alternating (benchmarks/timing.py). Prints the medians and the ratio ours / torchvision (below 1 = ours
faster). Run: python benchmarks/bench_deform_conv.py [--quick]
"""

from __future__ import annotations

import argparse

import torch
import torchvision

from detcore.ops import reference
from timing import paired_times

# (name, N, C_in, H, W, C_out, offset groups, modulated)
CASES = (
    ("shapes P3 DCNv2 (NAS-FCOS head)", 8, 128, 20, 20, 128, 2, True),
    ("shapes P3 DCN (VFNet star, RepPoints)", 8, 128, 20, 20, 128, 1, False),
    ("COCO P5 DCNv2 (R-50 head, 1 image)", 1, 256, 25, 34, 256, 1, True),
)


def forward_backward(fn, x, offset, weight, bias, mask):
    def run() -> None:
        out = fn(x, offset, weight, bias, mask)
        inputs = [t for t in (x, offset, weight, bias, mask) if t is not None]
        torch.autograd.grad(out.sum(), inputs)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    repeats = 3 if args.quick else 9
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, threads {torch.get_num_threads()}")
    for name, n, c_in, h, w, c_out, groups, modulated in CASES:
        x = torch.randn(n, c_in, h, w, requires_grad=True)
        offset = (torch.randn(n, 2 * groups * 9, h, w) * 2).requires_grad_()
        weight = (torch.randn(c_out, c_in, 3, 3) * 0.01).requires_grad_()
        bias = torch.zeros(c_out, requires_grad=True)
        mask = torch.rand(n, groups * 9, h, w, requires_grad=True) if modulated else None

        def ours(x, o, wt, b, m):
            return reference.deform_conv2d(x, o, wt, b, 1, 1, 1, m)

        def base(x, o, wt, b, m):
            return torchvision.ops.deform_conv2d(x, o, wt, b, padding=1, mask=m)

        t_ours, t_base = paired_times(forward_backward(ours, x, offset, weight, bias, mask),
                                      forward_backward(base, x, offset, weight, bias, mask), repeats)
        print(f"{name:<40} fwd+bwd  ours {t_ours * 1000:8.1f} ms   torchvision {t_base * 1000:8.1f} ms   "
              f"ratio ours/torchvision {t_ours / t_base:5.3f} (speed-up {t_base / t_ours:4.2f}x)", flush=True)


if __name__ == "__main__":
    main()
