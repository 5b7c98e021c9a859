"""DetectoRS (RFP + SAC on Cascade R-CNN and HTC) against MMDetection 3.3.

The fixtures are the tamed ones (``tests/fixtures/mmdet-refs-tamed``): the shared seeded DetectoRS fixtures put
random weights into the layers MMDetection zero-initialises (RFP feedback, SAC offsets), which makes the
recursive backbone chaotic (our own float32 and float64 runs share no detection). Their losses sample RoIs at
random, so only the layout and the detections are compared.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from det_common.parity import load_fixture, match_rate
from detcore.apis import inference_detector
from detcore.config import load_config
from detcore.registry import build

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "mmdet-refs-tamed"
NAMES = ["detectors_cascade_rcnn_r50_1x_coco", "detectors_htc_r50_1x_coco"]


def fixture_keys(name: str) -> set[str]:
    recipe = json.loads((FIXTURES / name / "recipe.json").read_text())
    keys = {entry[0] for entry in recipe["params"]} | set(recipe.get("aliases", {}))
    with np.load(FIXTURES / name / "tensors.npz") as tensors:
        return keys | set(tensors.files)


@pytest.mark.parametrize("name", NAMES)
def test_detectors_configs_have_mmdetection_weight_names(name):
    model = build("detectors", load_config(name)["model"])
    assert set(model.state_dict()) == fixture_keys(name)


@pytest.mark.parametrize("name", NAMES)
def test_detectors_gives_mmdetection_detections(name):
    fixture, model = load_fixture(FIXTURES / name)
    assert type(model.neck).__name__ == "RFP" and model.neck.rfp_steps == 2  # the recursive pyramid runs
    with torch.inference_mode():
        ours = inference_detector(model, fixture.image())
    reference = fixture.detections()
    assert len(reference) == 100
    assert reference.has("masks") == (name == "detectors_htc_r50_1x_coco") == ours.has("masks")
    assert match_rate(reference, ours) >= 0.99  # 100 / 100 (with masks for HTC) when written
