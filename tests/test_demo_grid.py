"""The demo's picture grid: ground truth and predictions side by side for validation images, readable size."""

from __future__ import annotations

import numpy as np
from PIL import Image

from detcore.apis import init_detector
from detcore.engine.settings import resolve_pipelines
from detcore.registry import build
from detcore.tools.demo_grid import save_prediction_grid


def test_grid_of_ground_truth_and_predictions(trained_shapes, tmp_path):
    model = init_detector(str(trained_shapes.config_file), trained_shapes.checkpoint)
    dataset = build("datasets", resolve_pipelines(model.cfg)["test_dataloader"]["dataset"])
    out = save_prediction_grid(model, dataset, tmp_path / "grid.png", num_images=4, per_row=2, cell=320)
    grid = np.asarray(Image.open(out).convert("RGB"))
    # 4 images, 2 per row: 2 rows of 4 panels, each 320 px wide and 320 px + a title strip tall
    assert grid.shape[1] >= 4 * 320 and 2 * 320 < grid.shape[0] < 2 * 420
    print(out)
