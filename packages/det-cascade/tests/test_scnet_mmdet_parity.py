"""SCNet against MMDetection 3.3: the fixture's seeded weights (residual mask / semantic / global context heads,
feature relay) loaded strictly into our config of the same name. The fixture's losses are not deterministic
(random RoI sampling), so only detections are compared.

* Detections (label, score within 1e-3, box IoU >= 0.99): 99 / 100.
* Masks, judged on MMDetection's own boxes: the mask branch (semantic and global context fusion, the last box
  stage's shared features relayed, the 12-conv residual mask head, pasting at ``mask_thr_binary``) run on the
  fixture's boxes and labels gives all 100 of its masks pixel for pixel.
* Masks end to end: 93 / 100 (95 with two torch threads). This is float32 rounding, not an algorithmic
  difference: 58 of the 100 boxes are under 2 px wide and up to 760 px tall, and pasting a 28 x 28 mask into
  such a box samples one column of it, so a box edge moved by a few thousandths of a pixel flips many pixels
  (random moves of 6e-3 px of the fixture's boxes drop the IoU of eight of our masks to 0-0.76).
  The seeded network moves the boxes that much from rounding alone: our own runs with one and with two torch
  threads (only the summation order differs) are 1.8e-3 px apart (median, max 0.33 px) and agree on only
  95 / 100 masks, as ours and MMDetection's (6e-3 px apart, as in the HTC fixture, whose masks are not that
  sensitive) agree on 93-95. The end-to-end figure is kept as a floor.
* Masks end to end on the tamed fixture (same procedure, box deltas drawn small so that boxes keep a width):
  100 / 100.
"""

from pathlib import Path

import pytest
import torch

from det_common.parity import load_fixture, match_rate
from detcore.apis import inference_detector
from detcore.apis.inference import prepare_batch
from detcore.structures import Instances

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "mmdet-refs"
TAMED = FIXTURES.parent / "mmdet-refs-tamed"


def without_masks(dets: Instances) -> Instances:
    return Instances(dets.image_size, boxes=dets.boxes, scores=dets.scores, labels=dets.labels)


@pytest.fixture(scope="module")
def scnet_run():
    """The fixture, its model, mmdet's detections, ours (``inference_detector``) and the RoI head's features of
    that run (FPN levels with the semantic and global context features, as ``context`` made them)."""
    fixture, model = load_fixture(FIXTURES / "scnet_r50_fpn_1x_coco")
    head, captured = model.roi_head, []

    def recorded_context(feats, batch=None):
        captured.append(type(head).context(head, feats, batch))
        return captured[-1]

    head.context = recorded_context
    try:
        ours = inference_detector(model, fixture.image())
    finally:
        del head.context
    return fixture, model, fixture.detections(), ours, captured[-1][0]


def test_scnet_gives_mmdetection_detections(scnet_run):
    _, model, reference, ours, _ = scnet_run
    head = model.roi_head
    assert head.with_semantic and head.glbctx_head is not None and head.feat_relay_head is not None
    assert reference.has("masks") and ours.has("masks")
    assert match_rate(without_masks(reference), without_masks(ours)) >= 0.99
    assert match_rate(reference, ours) >= 0.92  # float32 rounding on sub-pixel-wide boxes, see the module docstring


def test_scnet_mask_branch_gives_mmdetection_masks_on_its_boxes(scnet_run):
    fixture, model, reference, _, feats = scnet_run
    metas = prepare_batch(model, fixture.image()).metas
    boxes = without_masks(reference)
    with torch.inference_mode():
        masked = model.roi_head.predict_mask(feats, [boxes], metas, rescale=True)[0]
    assert match_rate(reference, masked) >= 0.99


def test_scnet_gives_mmdetection_masks_end_to_end_on_the_tamed_fixture():
    """The tamed fixture (``tests/fixtures/mmdet-refs-tamed``: box deltas drawn small, so boxes keep a width)
    takes sub-pixel boxes out of the comparison: every detection must match, its mask included."""
    fixture, model = load_fixture(TAMED / "scnet_r50_fpn_1x_coco")
    with torch.inference_mode():
        ours = inference_detector(model, fixture.image())
    reference = fixture.detections()
    widths = reference.boxes[:, 2] - reference.boxes[:, 0]
    assert len(reference) == 100 and reference.has("masks") and bool((widths > 4).all())
    assert match_rate(reference, ours) >= 0.99  # 100 / 100 with masks when written
