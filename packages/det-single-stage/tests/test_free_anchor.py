"""FreeAnchor: the saliency per class, training on a synthetic batch, an image without ground truth."""

import torch
from ss_helpers import assert_training_reduces_loss, shapes_model, tiny_batch, without_ground_truth

from detcore.structures import Instances


def test_box_prob_is_the_best_ramped_iou_per_class():
    head = shapes_model("retinanet_free_anchor_r18_fpn_shapes").bbox_head
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 8.0], [50.0, 50.0, 60.0, 60.0]])
    gt = Instances((100, 100), boxes=torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]]),
                   labels=torch.tensor([2, 2]))
    prob = head.object_box_prob(torch.zeros(3, 4), anchors, gt)
    # IoU 1 -> 1; IoU 0.8 -> (0.8 - 0.6) / (1 - 0.6) = 0.5; class 2 only
    assert torch.allclose(prob[:, 2], torch.tensor([1.0, 0.5, 1.0]), atol=1e-5)
    assert prob[:, :2].abs().sum() == 0


def test_training_reduces_loss():
    history = assert_training_reduces_loss(shapes_model("retinanet_free_anchor_r18_fpn_shapes"), tiny_batch())
    assert {"positive_bag_loss", "negative_bag_loss"} <= set(history[0])


def test_no_ground_truth_gives_finite_losses():
    model = shapes_model("retinanet_free_anchor_r18_fpn_shapes").train()
    losses = model.loss(without_ground_truth(tiny_batch()))
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["positive_bag_loss"].item() == 0.0
    sum(losses.values()).backward()
