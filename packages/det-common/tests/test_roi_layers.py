"""Deformable RoI pooling layers: mmcv parameter layout, zero offsets = RoIAlign, learnt offsets and modulation."""

import pytest
import torch

from det_common.heads.roi import SingleRoIExtractor
from det_common.heads.roi.roi_layers import DeformRoIPoolPack, ModulatedDeformRoIPoolPack
from detcore import ops


def _inputs(channels: int = 4):
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(2, channels, 12, 16, generator=g)
    rois = torch.tensor([[0.0, 4.0, 6.0, 40.0, 30.0], [1.0, 10.0, 2.0, 60.0, 44.0], [0.0, 0.0, 0.0, 63.0, 47.0]])
    return feat, rois


def test_mmcv_parameter_names():
    pack = DeformRoIPoolPack(output_size=3, output_channels=4, deform_fc_channels=16)
    assert {k: tuple(v.shape) for k, v in pack.state_dict().items()} == {
        "offset_fc.0.weight": (16, 36), "offset_fc.0.bias": (16,), "offset_fc.2.weight": (16, 16),
        "offset_fc.2.bias": (16,), "offset_fc.4.weight": (18, 16), "offset_fc.4.bias": (18,),
    }
    modulated = ModulatedDeformRoIPoolPack(output_size=3, output_channels=4, deform_fc_channels=16)
    assert {k for k in modulated.state_dict() if k.startswith("mask_fc")} == {
        "mask_fc.0.weight", "mask_fc.0.bias", "mask_fc.2.weight", "mask_fc.2.bias"}


def test_zero_offsets_pool_like_roi_align():
    feat, rois = _inputs()
    pack = DeformRoIPoolPack(output_size=3, output_channels=4, deform_fc_channels=16, spatial_scale=0.25,
                             sampling_ratio=2)
    align = ops.roi_align(feat, rois, (3, 3), 0.25, 2, True)
    torch.testing.assert_close(pack(feat, rois), align)  # the last offset fc starts at zero
    modulated = ModulatedDeformRoIPoolPack(output_size=3, output_channels=4, deform_fc_channels=16,
                                           spatial_scale=0.25, sampling_ratio=2)
    torch.testing.assert_close(modulated(feat, rois), 0.5 * align)  # zero mask logits: sigmoid(0) everywhere


def test_learnt_offsets_and_modulation_move_and_scale_the_bins():
    feat, rois = _inputs()
    modulated = ModulatedDeformRoIPoolPack(output_size=2, output_channels=4, deform_fc_channels=8,
                                           spatial_scale=0.25, gamma=0.1)
    offset = torch.linspace(-1.0, 1.0, 8)
    mask_logits = torch.tensor([2.0, -1.0, 0.5, 0.0])
    with torch.no_grad():
        modulated.offset_fc[4].bias.copy_(offset)
        modulated.mask_fc[2].bias.copy_(mask_logits)
    expected = ops.deform_roi_pool(feat, rois, offset.view(1, 2, 2, 2).expand(3, -1, -1, -1).contiguous(), 2, 0.25,
                                   0, 0.1)
    expected = expected * mask_logits.sigmoid().view(1, 1, 2, 2)
    torch.testing.assert_close(modulated(feat, rois), expected)
    assert not torch.allclose(expected, ops.roi_align(feat, rois, (2, 2), 0.25, 0, True) * mask_logits.sigmoid().view(1, 1, 2, 2))


def test_extractor_builds_deformable_pooling_per_level_from_config():
    feats = [torch.randn(1, 8, 32, 32), torch.randn(1, 8, 16, 16)]
    rois = torch.tensor([[0.0, 2.0, 2.0, 30.0, 30.0], [0.0, 10.0, 20.0, 120.0, 110.0]])
    common = {"out_channels": 8, "featmap_strides": [4, 8]}
    deform = SingleRoIExtractor(roi_layer={"type": "DeformRoIPoolPack", "output_size": 7, "output_channels": 8,
                                           "deform_fc_channels": 32}, **common)
    align = SingleRoIExtractor(roi_layer={"type": "RoIAlign", "output_size": 7, "sampling_ratio": 0}, **common)
    assert [layer.spatial_scale for layer in deform.roi_layers] == [0.25, 0.125]
    assert "roi_layers.1.offset_fc.4.weight" in deform.state_dict()
    out = deform(feats, rois)
    torch.testing.assert_close(out, align(feats, rois))
    out.sum().backward()
    assert deform.roi_layers[0].offset_fc[4].weight.grad is not None


def test_wrong_channel_count_and_unknown_layer_say_what_to_set():
    feat, rois = _inputs(channels=4)
    with pytest.raises(ValueError, match="output_channels = 8 but the feature map has 4 channels"):
        DeformRoIPoolPack(output_size=3, output_channels=8, deform_fc_channels=16)(feat, rois)
    with pytest.raises(ValueError, match="roi_layer type 'PrRoIPool'"):
        SingleRoIExtractor(roi_layer={"type": "PrRoIPool", "output_size": 7}, out_channels=8)
