"""The demo grid's panels: boxes drawn where they are after enlarging, any box an untrained detector gives."""

from __future__ import annotations

import numpy as np

from detcore.tools.demo_grid import draw_panel


def test_panel_draws_boxes_where_they_are():
    image = np.zeros((80, 160, 3), np.uint8)
    panel = np.asarray(draw_panel(image, np.array([[40.0, 20.0, 120.0, 60.0]]), [0], ["thing"], [0.9], 320, "t"))
    header = max(18, 320 // 14)
    # the image is enlarged x2: the box outline runs along x = 80..240 at y = header + 40 .. header + 120
    row = panel[header + 100, :, :].astype(int).sum(axis=1)
    assert row[81] > 0 and row[239] > 0 and row[160] == 0  # left and right edges drawn, inside empty
    assert panel.shape[:2] == (320 + header, 320)


def test_panel_accepts_unordered_and_outside_boxes():
    image = np.zeros((40, 40, 3), np.uint8)
    boxes = np.array([[30.0, 30.0, 10.0, 5.0], [-20.0, 50.0, 60.0, 70.0]])  # an untrained detector's boxes
    panel = draw_panel(image, boxes, [0, 1], ["a", "b"], [0.5, 0.4], 160, "t")
    assert panel.size == (160, 160 + 18)
