"""DetectoRS configs (RFP + SAC on Cascade R-CNN and HTC) build with MMDetection 3.3's weight names.

Only the layout is checked here: the fixtures' key sets (seeded parameters + exact tensors) equal our
state dicts. Detection parity cannot be judged with these fixtures: the seeded DetectoRS nets are numerically
chaotic (our float32 and float64 runs share no detection; see the README).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from detcore.config import load_config
from detcore.registry import build

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "mmdet-refs"


def fixture_keys(name: str) -> set[str]:
    recipe = json.loads((FIXTURES / name / "recipe.json").read_text())
    keys = {entry[0] for entry in recipe["params"]} | set(recipe.get("aliases", {}))
    with np.load(FIXTURES / name / "tensors.npz") as tensors:
        return keys | set(tensors.files)


@pytest.mark.parametrize("name", ["detectors_cascade_rcnn_r50_1x_coco", "detectors_htc_r50_1x_coco"])
def test_detectors_configs_have_mmdetection_weight_names(name):
    model = build("detectors", load_config(name)["model"])
    assert set(model.state_dict()) == fixture_keys(name)
