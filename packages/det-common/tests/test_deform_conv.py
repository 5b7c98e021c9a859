"""DeformConv2d (offsets given by the caller, VarifocalNet / RepPoints) and the Pack that predicts its own."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from det_common.layers import DeformConv2d, DeformConv2dPack


def test_zero_offsets_are_a_plain_convolution_and_whole_cell_offsets_shift_the_taps() -> None:
    torch.manual_seed(0)
    conv = DeformConv2d(4, 6, 3, padding=1, bias=True)
    x = torch.randn(1, 4, 7, 9)
    offset = torch.zeros(1, 18, 7, 9)
    torch.testing.assert_close(conv(x, offset), F.conv2d(x, conv.weight, conv.bias, padding=1))
    # every tap moved one cell right (dx = +1): a plain conv of the input shifted left, away from the left
    # border (where the moved taps still read column 0 and the shifted input's padding reads zeros)
    offset[:, 1::2] = 1.0
    shifted = F.pad(x[..., 1:], (0, 1))
    plain = F.conv2d(shifted, conv.weight, conv.bias, padding=1)
    torch.testing.assert_close(conv(x, offset)[..., 1:], plain[..., 1:])


def test_pack_starts_as_a_plain_convolution_with_mmcv_names() -> None:
    torch.manual_seed(0)
    conv = DeformConv2dPack(4, 6, 3, padding=1)
    assert set(conv.state_dict()) == {"weight", "conv_offset.weight", "conv_offset.bias"}
    x = torch.randn(1, 4, 5, 5)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, padding=1))
    assert set(DeformConv2d(4, 6, 3).state_dict()) == {"weight"}
