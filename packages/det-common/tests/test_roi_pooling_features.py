"""``pooling_features``: the RoI head's one conversion of the neck's maps (fast path, bf16 autocast)."""

import torch

from det_common.heads.roi.roi_layers import RoIAlign, pooling_features


def test_pooling_features_make_contiguous_fp32_and_keep_wider_types():
    bf16_cl = torch.randn(1, 8, 10, 12).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    fp32 = torch.randn(1, 8, 5, 6)
    fp64 = torch.randn(1, 8, 5, 6, dtype=torch.float64)
    out = pooling_features([bf16_cl, fp32, fp64])
    assert out[0].dtype == torch.float32 and out[0].is_contiguous() and torch.equal(out[0], bf16_cl.float())
    assert out[1] is fp32  # already as the RoI layers read it: no copy
    assert out[2].dtype == torch.float64


def test_roi_align_gives_the_same_features_from_channels_last_bf16_as_from_its_fp32_copy():
    feat = torch.randn(1, 8, 20, 24).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    rois = torch.tensor([[0.0, 2.0, 3.0, 40.0, 50.0], [0.0, 10.0, 10.0, 70.0, 60.0]])
    layer = RoIAlign(7, spatial_scale=0.25, sampling_ratio=2)
    direct = layer(feat, rois)
    assert direct.dtype == torch.bfloat16
    assert torch.equal(direct, layer(pooling_features([feat])[0], rois).to(torch.bfloat16))  # pooled in fp32 both ways


class LevelsWithExtra(tuple):
    """A feature carrier like HTC's: the levels plus a per-batch extra, rebuilt around converted levels."""

    extra: torch.Tensor

    def __new__(cls, levels, extra):
        feats = super().__new__(cls, levels)
        feats.extra = extra
        return feats

    def with_levels(self, levels):
        return LevelsWithExtra(levels, self.extra)


def test_pooling_features_keep_what_a_carrier_holds_besides_the_levels():
    extra = torch.randn(1, 4, 3, 3)
    feats = LevelsWithExtra([torch.randn(1, 8, 6, 6).to(torch.bfloat16)], extra)
    out = pooling_features(feats)
    assert isinstance(out, LevelsWithExtra) and out.extra is extra
    assert out[0].dtype == torch.float32 and torch.equal(out[0], feats[0].float())
