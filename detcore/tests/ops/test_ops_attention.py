"""Multi-scale deformable attention reference against a naive bilinear-sampling loop."""

import pytest
import torch

from detcore import ops
from detcore.ops import reference


def make_inputs(batch=2, queries=3, heads=2, channels=3, points=2, shapes=((4, 5), (2, 3)), dtype=torch.float64):
    spatial_shapes = torch.tensor(shapes, dtype=torch.int64)
    areas = spatial_shapes.prod(1)
    level_start_index = torch.cat([areas.new_zeros(1), areas.cumsum(0)[:-1]])
    value = torch.randn(batch, int(areas.sum()), heads, channels, dtype=dtype)
    # a little outside [0, 1] too, to exercise the zero padding
    locations = torch.rand(batch, queries, heads, len(shapes), points, 2, dtype=dtype) * 1.2 - 0.1
    weights = torch.rand(batch, queries, heads, len(shapes), points, dtype=dtype)
    weights = weights / weights.flatten(3).sum(-1)[..., None, None]
    return value, spatial_shapes, level_start_index, locations, weights


def test_matches_naive_loop(bilinear_zero):
    value, shapes, starts, locations, weights = make_inputs()
    got = ops.multi_scale_deformable_attention(value, shapes, starts, locations, weights)
    batch, queries, heads, levels, points, _ = locations.shape
    channels = value.shape[3]
    expected = torch.zeros(batch, queries, heads * channels, dtype=value.dtype)
    for b in range(batch):
        for q in range(queries):
            for h in range(heads):
                acc = torch.zeros(channels, dtype=value.dtype)
                for lvl in range(levels):
                    height, width = shapes[lvl].tolist()
                    start = int(starts[lvl])
                    image = value[b, start : start + height * width, h].T.reshape(channels, height, width)
                    for p in range(points):
                        x = locations[b, q, h, lvl, p, 0].item() * width - 0.5
                        y = locations[b, q, h, lvl, p, 1].item() * height - 0.5
                        acc = acc + weights[b, q, h, lvl, p] * bilinear_zero(image, y, x)
                expected[b, q, h * channels : (h + 1) * channels] = acc
    assert got.shape == (batch, queries, heads * channels)
    torch.testing.assert_close(got, expected)


def test_gradcheck():
    value, shapes, starts, locations, weights = make_inputs(batch=1, queries=2, heads=2, channels=2, points=2)
    value.requires_grad_(), locations.requires_grad_(), weights.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda v, loc, w: reference.multi_scale_deformable_attention(v, shapes, starts, loc, w),
        (value, locations, weights),
    )


def test_bad_inputs_name_the_argument():
    value, shapes, starts, locations, weights = make_inputs()
    with pytest.raises(ValueError, match="value"):
        ops.multi_scale_deformable_attention(value[:, :-1], shapes, starts, locations, weights)
    with pytest.raises(ValueError, match="attention_weights"):
        ops.multi_scale_deformable_attention(value, shapes, starts, locations, weights[..., :1])
    with pytest.raises(ValueError, match="sampling_locations"):
        ops.multi_scale_deformable_attention(value, shapes, starts, locations[..., 0], weights)


def test_msda_empty_level_contributes_zero():
    torch.manual_seed(0)
    b, heads, cv, q, p = 1, 2, 3, 4, 2
    shapes = torch.tensor([[2, 3], [0, 4], [1, 2]])
    starts = torch.tensor([0, 6, 6])
    value = torch.randn(b, 8, heads, cv)
    loc = torch.rand(b, q, heads, 3, p, 2)
    attn = torch.rand(b, q, heads, 3, p)
    msda = reference.multi_scale_deformable_attention
    out = msda(value, shapes, starts, loc, attn)
    keep = [0, 2]
    expected = msda(
        value, shapes[keep], torch.tensor([0, 6]), loc[:, :, :, keep], attn[:, :, :, keep])
    torch.testing.assert_close(out, expected)
