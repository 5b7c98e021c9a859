import math

import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator as TVAnchorGenerator
from torchvision.models.detection.image_list import ImageList

from det_common.priors import AnchorGenerator, MlvlPointGenerator, anchor_inside_flags


def _tv_anchors(sizes, ratios, featmap_sizes, image_size):
    gen = TVAnchorGenerator(sizes, (tuple(ratios),) * len(sizes))
    images = ImageList(torch.zeros(1, 3, *image_size), [image_size])
    feats = [torch.zeros(1, 1, h, w) for h, w in featmap_sizes]
    return gen(images, feats)[0]


def test_torchvision_retinanet_anchors_exact():
    sizes = tuple((x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in [32, 64, 128, 256, 512])
    ratios = (0.5, 1.0, 2.0)
    strides = [8, 16, 32, 64, 128]
    featmap_sizes = [(256 // s, 384 // s) for s in strides]
    ours = AnchorGenerator(strides, ratios, sizes=sizes, round_base_anchors=True)
    assert ours.num_base_priors == [9] * 5 and sizes[0] == (32, 40, 50)
    got = torch.cat(ours.grid_priors(featmap_sizes))
    expected = _tv_anchors(sizes, ratios, featmap_sizes, (256, 384))
    assert torch.equal(got, expected)


def test_torchvision_faster_rcnn_anchors_exact_with_scales():
    strides = [4, 8, 16, 32, 64]
    featmap_sizes = [(math.ceil(128 / s), math.ceil(192 / s)) for s in strides]
    # MMDetection's Faster R-CNN config (scales=[8], base size = stride) with rounding = torchvision's sizes 32..512
    ours = AnchorGenerator(strides, [0.5, 1.0, 2.0], scales=[8], round_base_anchors=True)
    expected = _tv_anchors(((32,), (64,), (128,), (256,), (512,)), (0.5, 1.0, 2.0), featmap_sizes, (128, 192))
    assert torch.equal(torch.cat(ours.grid_priors(featmap_sizes)), expected)


def test_mmdet_octave_anchors_by_formula():
    gen = AnchorGenerator([8], [0.5, 1.0, 2.0], octave_base_scale=4, scales_per_octave=3, center_offset=0.5)
    base = gen.base_anchors[0]
    # ratio-outer, scale-inner; centered at 0.5 * 8
    i = 1 * 3 + 2  # ratio 1.0, scale 4 * 2**(2/3)
    side = 8 * 4 * 2 ** (2 / 3)
    torch.testing.assert_close(base[i], torch.tensor([4 - side / 2, 4 - side / 2, 4 + side / 2, 4 + side / 2]))
    w = 8 * 4 * math.sqrt(2)  # ratio 0.5 (h/w), scale 4
    h = 8 * 4 / math.sqrt(2)
    torch.testing.assert_close(base[0], torch.tensor([4 - w / 2, 4 - h / 2, 4 + w / 2, 4 + h / 2]))
    anchors = gen.grid_priors([(2, 3)])[0]
    assert anchors.shape == (2 * 3 * 9, 4)
    torch.testing.assert_close(anchors[9 * 4 + i], base[i] + torch.tensor([8.0, 8.0, 8.0, 8.0]))  # location (1, 1)
    not_major = AnchorGenerator([8], [0.5, 1.0, 2.0], scales=[1.0, 2.0], scale_major=False).base_anchors[0]
    assert not_major.shape == (6, 4)
    torch.testing.assert_close(not_major[1], torch.tensor([-4.0, -4.0, 4.0, 4.0]))  # scale 1, ratio 1


def test_valid_and_inside_flags():
    gen = AnchorGenerator([16], [1.0], scales=[1.0])
    flags = gen.valid_flags([(4, 5)], pad_shape=(40, 50))[0]  # valid block: 3 rows x 4 cols
    expected = torch.zeros(4, 5, dtype=torch.bool)
    expected[:3, :4] = True
    assert torch.equal(flags, expected.reshape(-1))
    anchors = torch.tensor([[-5.0, 0.0, 10.0, 10.0], [0.0, 0.0, 50.0, 39.0], [0.0, 0.0, 10.0, 10.0]])
    valid = torch.tensor([True, True, False])
    assert anchor_inside_flags(anchors, valid, (40, 50), 0).tolist() == [False, False, False]
    assert anchor_inside_flags(anchors, valid, (40, 50), 4.0).tolist() == [False, True, False]
    assert anchor_inside_flags(anchors, valid, (40, 50), 5.0).tolist() == [True, True, False]
    assert anchor_inside_flags(anchors, valid, (40, 50), -1).tolist() == [True, True, False]


def test_point_generator_offsets_and_torchvision_fcos_centers():
    gen = MlvlPointGenerator([8, 16], offset=0.5)
    points = gen.grid_priors([(2, 3), (1, 2)])
    assert points[0].tolist() == [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]]
    assert gen.grid_priors([(1, 2)] * 2, with_stride=True)[1].tolist() == [[8, 8, 16, 16], [24, 8, 16, 16]]
    # torchvision's FCOS uses anchors of one size per level; their centers are at k * stride (offset 0)
    strides = [8, 16, 32]
    featmap_sizes = [(64 // s, 96 // s) for s in strides]
    anchors = _tv_anchors(((8,), (16,), (32,)), (1.0,), featmap_sizes, (64, 96))
    centers = (anchors[:, :2] + anchors[:, 2:]) / 2
    ours = torch.cat(MlvlPointGenerator(strides, offset=0.0).grid_priors(featmap_sizes))
    assert torch.equal(ours, centers)
    flags = gen.valid_flags([(2, 3)], pad_shape=(16, 10))[0]
    assert flags.tolist() == [True, True, False, True, True, False]
