"""Reference multi-scale deformable attention (Deformable DETR) built on F.grid_sample."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from detcore.ops.checks import check_floating, check_same_device, check_tensor


def multi_scale_deformable_attention(
    value: Tensor,
    spatial_shapes: Tensor,
    level_start_index: Tensor,
    sampling_locations: Tensor,
    attention_weights: Tensor,
) -> Tensor:
    """Sum over levels and points of attention_weights x bilinear samples of each level's value map; [B, Q, heads*Cv].

    value [B, S, heads, Cv] stacks the flattened (row-major) maps of L levels, level l of size spatial_shapes[l] =
    (H, W) starting at row level_start_index[l]; sampling_locations [B, Q, heads, L, P, 2] are normalized (x, y) in
    [0, 1] (pixel x = loc_x * W - 0.5); samples outside the map read zeros (grid_sample, align_corners=False).
    """
    op = "multi_scale_deformable_attention"
    value = check_tensor(op, "value", value, 4, "[B, S, heads, Cv]")
    spatial_shapes = check_tensor(op, "spatial_shapes", spatial_shapes, 2, "[L, 2] (H, W)")
    level_start_index = check_tensor(op, "level_start_index", level_start_index, 1, "[L]")
    sampling_locations = check_tensor(op, "sampling_locations", sampling_locations, 6, "[B, Q, heads, L, P, 2]")
    attention_weights = check_tensor(op, "attention_weights", attention_weights, 5, "[B, Q, heads, L, P]")
    check_floating(op, "value", value)
    check_same_device(op, value=value, sampling_locations=sampling_locations, attention_weights=attention_weights)

    batch, num_keys, heads, channels = value.shape
    _, num_queries, _, levels, points, _ = sampling_locations.shape
    if spatial_shapes.shape[1] != 2 or spatial_shapes.is_floating_point():
        raise ValueError(
            f"{op}: `spatial_shapes` must be an integer [L, 2] (H, W) tensor, got {tuple(spatial_shapes.shape)} {spatial_shapes.dtype}"
        )
    if tuple(sampling_locations.shape) != (batch, num_queries, heads, spatial_shapes.shape[0], points, 2):
        raise ValueError(
            f"{op}: `sampling_locations` must have shape [B={batch}, Q, heads={heads}, L={spatial_shapes.shape[0]}, P, 2], "
            f"got {tuple(sampling_locations.shape)}"
        )
    if tuple(attention_weights.shape) != tuple(sampling_locations.shape[:5]):
        raise ValueError(
            f"{op}: `attention_weights` must have shape {tuple(sampling_locations.shape[:5])} (sampling_locations without "
            f"the last dim), got {tuple(attention_weights.shape)}"
        )
    if level_start_index.shape[0] != levels:
        raise ValueError(f"{op}: `level_start_index` must have L={levels} entries, got {level_start_index.shape[0]}")
    shapes = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
    starts = [int(s) for s in level_start_index.tolist()]
    if sum(h * w for h, w in shapes) != num_keys:
        raise ValueError(
            f"{op}: `value` has S={num_keys} rows but the spatial_shapes {shapes} cover {sum(h * w for h, w in shapes)}"
        )

    grids = 2 * sampling_locations - 1  # grid_sample's [-1, 1] coordinates
    sampled = []
    for level, ((h, w), start) in enumerate(zip(shapes, starts)):
        if h * w == 0:  # an empty level contributes nothing (grid_sample rejects empty inputs)
            sampled.append(value.new_zeros(batch * heads, channels, num_queries, points))
            continue
        # [B, H*W, heads, Cv] -> [B*heads, Cv, H, W]
        level_value = value[:, start : start + h * w].permute(0, 2, 3, 1).reshape(batch * heads, channels, h, w)
        # [B, Q, heads, P, 2] -> [B*heads, Q, P, 2]
        level_grid = grids[:, :, :, level].transpose(1, 2).reshape(batch * heads, num_queries, points, 2)
        sampled.append(
            F.grid_sample(level_value, level_grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        )
    # [B*heads, Cv, Q, L*P] x [B*heads, 1, Q, L*P]
    samples = torch.stack(sampled, dim=3).flatten(3)
    weights = attention_weights.transpose(1, 2).reshape(batch * heads, 1, num_queries, levels * points)
    output = (samples * weights).sum(dim=-1).view(batch, heads * channels, num_queries)
    return output.transpose(1, 2).contiguous()
