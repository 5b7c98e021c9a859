"""The demo's picture grid: ground truth and predictions side by side for validation images, readable size."""

from __future__ import annotations

import numpy as np
from PIL import Image

from detcore.apis import init_detector
from detcore.engine.settings import resolve_pipelines
from detcore.registry import build
from detcore.tools.demo_grid import draw_panel, save_prediction_grid


def test_grid_of_ground_truth_and_predictions(trained_shapes, tmp_path):
    model = init_detector(str(trained_shapes.config_file), trained_shapes.checkpoint)
    dataset = build("datasets", resolve_pipelines(model.cfg)["test_dataloader"]["dataset"])
    out = save_prediction_grid(model, dataset, tmp_path / "grid.png", num_images=4, per_row=2, cell=320)
    grid = np.asarray(Image.open(out).convert("RGB"))
    # 4 images, 2 per row: 2 rows of 4 panels, each 320 px wide and 320 px + a title strip tall
    assert grid.shape[1] >= 4 * 320 and 2 * 320 < grid.shape[0] < 2 * 420
    print(out)


def test_panel_draws_boxes_where_they_are():
    image = np.zeros((80, 160, 3), np.uint8)
    panel = np.asarray(draw_panel(image, np.array([[40.0, 20.0, 120.0, 60.0]]), [0], ["thing"], [0.9], 320, "t"))
    header = max(18, 320 // 14)
    # the image is enlarged x2: the box outline runs along x = 80..240 at y = header + 40 .. header + 120
    row = panel[header + 100, :, :].astype(int).sum(axis=1)
    assert row[81] > 0 and row[239] > 0 and row[160] == 0  # left and right edges drawn, inside empty
    assert panel.shape[:2] == (320 + header, 320)
