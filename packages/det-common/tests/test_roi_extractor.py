"""SingleRoIExtractor: MMDetection's level mapping, and torchvision MultiScaleRoIAlign parity."""

from collections import OrderedDict

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign

from detcore import ops
from det_common.heads.roi import SingleRoIExtractor


def _feats(generator: torch.Generator, image: tuple[int, int] = (256, 320)) -> list[torch.Tensor]:
    return [torch.randn(2, 8, image[0] // s, image[1] // s, generator=generator) for s in (4, 8, 16, 32)]


def _rois_of_sides(sides: list[float]) -> torch.Tensor:
    return torch.tensor([[i % 2, 10.0, 20.0, 10.0 + s, 20.0 + s] for i, s in enumerate(sides)])


def test_mmdet_level_mapping_uses_finest_scale_56():
    extractor = SingleRoIExtractor(out_channels=8, featmap_strides=[4, 8, 16, 32])
    rois = _rois_of_sides([10, 55.9, 56, 111.9, 112, 224, 448, 2000])
    assert extractor.map_roi_levels(rois).tolist() == [0, 0, 0, 0, 1, 2, 3, 3]


def test_torchvision_level_mapping_uses_canonical_224_level_4():
    extractor = SingleRoIExtractor(out_channels=8, featmap_strides=[4, 8, 16, 32], level_mapping="torchvision")
    rois = _rois_of_sides([10, 111.9, 112, 223.9, 224, 448, 2000])
    # level k = floor(4 + log2(s / 224)), clamped to [2, 5], minus 2
    assert extractor.map_roi_levels(rois).tolist() == [0, 0, 1, 1, 2, 3, 3]


def test_each_roi_is_pooled_from_its_level_with_that_levels_scale():
    g = torch.Generator().manual_seed(0)
    feats = _feats(g)
    extractor = SingleRoIExtractor(
        roi_layer={"type": "RoIAlign", "output_size": 7, "sampling_ratio": 0, "aligned": True},
        out_channels=8,
        featmap_strides=[4, 8, 16, 32],
    )
    rois = _rois_of_sides([30, 120, 240, 480])
    out = extractor(feats, rois)
    assert out.shape == (4, 8, 7, 7)
    for k, (level, stride) in enumerate(zip([0, 1, 2, 3], [4, 8, 16, 32])):
        expected = ops.roi_align(feats[level], rois[k : k + 1], 7, 1.0 / stride, 0, True)
        torch.testing.assert_close(out[k : k + 1], expected)


def test_roi_scale_factor_enlarges_rois_about_their_centers():
    g = torch.Generator().manual_seed(1)
    feats = _feats(g)
    plain = SingleRoIExtractor(out_channels=8)
    scaled = SingleRoIExtractor(out_channels=8, roi_scale_factor=2.0)
    rois = torch.tensor([[0.0, 40.0, 40.0, 60.0, 60.0]])
    bigger = torch.tensor([[0.0, 30.0, 30.0, 70.0, 70.0]])
    torch.testing.assert_close(scaled(feats, rois), plain(feats, bigger))


def test_empty_rois_give_empty_features():
    g = torch.Generator().manual_seed(2)
    out = SingleRoIExtractor(out_channels=8)(_feats(g), torch.zeros((0, 5)))
    assert out.shape == (0, 8, 7, 7)


def test_torchvision_mode_matches_multiscale_roi_align():
    g = torch.Generator().manual_seed(3)
    image = (256, 320)
    feats = _feats(g, image)
    boxes = []
    for _ in range(2):
        xy = torch.rand(60, 2, generator=g) * 200
        wh = torch.rand(60, 2, generator=g) ** 2 * 250 + 2
        boxes.append(torch.cat([xy, xy + wh], dim=1))
    tv = MultiScaleRoIAlign(["0", "1", "2", "3"], output_size=7, sampling_ratio=2)
    expected = tv(OrderedDict((str(i), f) for i, f in enumerate(feats)), boxes, [image, image])
    ours = SingleRoIExtractor(
        roi_layer={"type": "RoIAlign", "output_size": 7, "sampling_ratio": 2, "aligned": False},
        out_channels=8,
        featmap_strides=[4, 8, 16, 32],
        level_mapping="torchvision",
    )
    rois = torch.cat([torch.cat([torch.full((60, 1), float(i)), b], dim=1) for i, b in enumerate(boxes)])
    torch.testing.assert_close(ours(feats, rois), expected, rtol=0, atol=0)


def test_unknown_level_mapping_and_roi_layer_are_rejected():
    with pytest.raises(ValueError, match="level_mapping"):
        SingleRoIExtractor(out_channels=8, level_mapping="fpn")
    with pytest.raises(ValueError, match="roi_layer type"):
        SingleRoIExtractor(roi_layer={"type": "PSRoIPool", "output_size": 7}, out_channels=8)
