"""Shared by det-keypoint's tests: fixtures' folder, shapes models built from their configs."""

from pathlib import Path

from detcore.config import load_config
from detcore.registry import build

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "mmdet-refs"


def build_shapes_model(config: str):
    """The detector of a ``*_shapes`` config, randomly initialised, in training mode."""
    model = build("detectors", load_config(config)["model"])
    return model.train()


def without_canvas(model):
    """``model`` with its test pipeline minus ``RandomCenterCropPad``: the fixtures' losses were computed on
    the unpadded image, as MMDetection's ``model.loss`` was given it."""
    model.test_pipeline_cfg = [s for s in model.test_pipeline_cfg if s["type"] != "RandomCenterCropPad"]
    return model
