"""CornerNet's parts: corner targets and the embedding loss, pair decoding, training on a synthetic batch."""

import math

import torch

from det_common.testing import synthetic_batch, train_steps
from det_keypoint.losses.associative_embedding import pull_push_single
from detcore.structures import Instances
from kp_helpers import build_shapes_model


def test_pull_push():
    """Equal corner embeddings pull nothing; object means a margin apart push nothing, closer ones do."""
    emb = torch.zeros(1, 4, 4)
    emb[0, 0, 0] = emb[0, 3, 3] = 0.0
    emb[0, 1, 1] = emb[0, 2, 2] = 1.5
    pairs = [((0, 0), (3, 3)), ((1, 1), (2, 2))]
    pull, push = pull_push_single(emb, emb, pairs)
    assert pull.item() == 0 and push.item() == 0
    emb[0, 2, 2] = 0.5
    pull, push = pull_push_single(emb, emb, pairs)
    assert math.isclose(pull.item(), 0.25, rel_tol=1e-6) and math.isclose(push.item(), 0.0, abs_tol=1e-6)
    emb[0, 1, 1] = 0.5
    assert math.isclose(pull_push_single(emb, emb, pairs)[1].item(), 0.5, rel_tol=1e-6)


def test_corner_targets_mark_each_objects_corners():
    model = build_shapes_model("cornernet_hourglass_shapes")
    gt = Instances((64, 64), boxes=torch.tensor([[8.0, 12.0, 40.0, 30.0]]), labels=torch.tensor([2]))
    targets = model.bbox_head.get_targets([gt], torch.Size([1, 3, 16, 16]), (64, 64))
    assert targets["tl_heat"][0, 2, 3, 2] == 1 and targets["br_heat"][0, 2, 7, 10] == 1
    assert targets["tl_heat"].eq(1).sum() == 1 and targets["pairs"] == [[((3, 2), (7, 10))]]
    torch.testing.assert_close(targets["br_off"][0, :, 7, 10], torch.tensor([0.0, 0.5]))


def test_cornernet_loss_falls_and_predicts():
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(64, 96), num_classes=3)
    torch.manual_seed(0)
    model = build_shapes_model("cornernet_hourglass_shapes")
    history = train_steps(model, batch, steps=4, lr=1e-4)
    assert set(history[0]) >= {"det_loss.0", "off_loss.0", "pull_loss.0", "push_loss.0"}
    assert history[-1]["total"] < 0.8 * history[0]["total"], [h["total"] for h in history]
    model.eval()
    with torch.no_grad():
        found = model.predict(batch)
    for d in found:
        assert len(d) <= 100 and d.scores.diff().le(0).all()
        assert ((d.boxes[:, 2] > d.boxes[:, 0]) & (d.boxes[:, 3] > d.boxes[:, 1])).all()


def test_cornernet_image_without_objects_trains():
    batch = synthetic_batch(torch.Generator().manual_seed(1), num_images=2, size=(64, 64), num_classes=3)
    batch.gt = [Instances((64, 64), boxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))] * 2
    model = build_shapes_model("cornernet_hourglass_shapes")
    losses = model.loss(batch)
    assert losses["pull_loss.0"].item() == 0 and losses["push_loss.0"].item() == 0 and losses["off_loss.0"].item() == 0
    assert losses["det_loss.0"].item() > 0
    sum(losses.values()).backward()


def test_centripetalnet_loss_falls_and_its_shift_targets_point_at_the_center():
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(64, 96), num_classes=3)
    torch.manual_seed(0)
    model = build_shapes_model("centripetalnet_hourglass_shapes")
    gt = Instances((64, 64), boxes=torch.tensor([[8.0, 12.0, 40.0, 30.0]]), labels=torch.tensor([2]))
    targets = model.bbox_head.get_targets([gt], torch.Size([1, 3, 16, 16]), (64, 64), **model.bbox_head.target_options())
    center = torch.tensor([6.0, 5.25])  # the box's center in feature cells
    torch.testing.assert_close(targets["tl_guiding"][0, :, 3, 2], center - torch.tensor([2.0, 3.0]))
    torch.testing.assert_close(targets["br_centripetal"][0, :, 7, 10].exp(), torch.tensor([10.0, 7.5]) - center)
    history = train_steps(model, batch, steps=4, lr=1e-4)
    assert set(history[0]) >= {"det_loss.0", "off_loss.0", "guiding_loss.0", "centripetal_loss.0"}
    assert history[-1]["total"] < 0.8 * history[0]["total"], [h["total"] for h in history]
    model.eval()
    with torch.no_grad():
        assert len(model.predict(batch)) == 2
