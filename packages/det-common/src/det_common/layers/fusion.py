"""Conv-BN folding for inference: a BatchNorm right after a convolution becomes part of the convolution."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from det_common.layers.conv_module import ConvModule

_FOLDABLE_NORMS = (nn.BatchNorm2d, FrozenBatchNorm2d)


def _fold_into_conv(conv: nn.Conv2d, norm: nn.Module) -> None:
    """Rewrite ``conv`` so that it computes ``norm(conv(x))`` with the norm's running statistics."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    with torch.no_grad():
        conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
        new_bias = (bias - norm.running_mean) * scale + norm.bias
    conv.bias = nn.Parameter(new_bias.detach(), requires_grad=False)


def _norm_follows_conv(parent: nn.Module) -> bool:
    """Whether a norm registered right after a conv in ``parent`` also runs right after it on the conv's output
    alone: true of ConvModule's conv-norm order, of Sequential, and of modules that declare it with the class
    attribute ``norm_follows_conv = True`` (ResNet and its blocks). Other modules are left unfolded."""
    if isinstance(parent, ConvModule):
        order = list(parent.order)
        return order.index("norm") == order.index("conv") + 1
    return isinstance(parent, nn.Sequential) or bool(getattr(parent, "norm_follows_conv", False))


def fuse_conv_bn(module: nn.Module) -> int:
    """Fold every eval-mode BatchNorm / FrozenBatchNorm that directly follows a Conv2d into it, in place.

    "Follows" means registered right after the conv in the same parent (as in ResNet blocks,
    ``downsample`` Sequentials and ConvModule); the norm becomes ``nn.Identity``. Only for
    inference: the folded model cannot be trained. Returns the number of folded norms.
    """
    folded = 0
    for parent in module.modules():
        if not _norm_follows_conv(parent):
            continue
        previous = None
        for name, child in list(parent.named_children()):
            is_eval_norm = isinstance(child, _FOLDABLE_NORMS) and not (
                isinstance(child, nn.BatchNorm2d) and (child.training or child.running_mean is None)
            )
            if (
                is_eval_norm
                and type(previous) is nn.Conv2d
                and previous.out_channels == child.weight.shape[0]
            ):
                _fold_into_conv(previous, child)
                setattr(parent, name, nn.Identity())
                folded += 1
                previous = None
                continue
            previous = child
    return folded
