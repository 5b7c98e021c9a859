"""The demo's picture: validation images with their ground truth and the detector's predictions side by side,
each panel enlarged so that boxes and "class score" labels can be read."""

from __future__ import annotations

import colorsys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def _colour(label: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((label * 0.618034) % 1.0, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_panel(image: np.ndarray, boxes: np.ndarray, labels: Sequence[int], classes: Sequence[str],
               scores: Sequence[float] | None, cell: int, title: str) -> Image.Image:
    """``image`` enlarged to ``cell`` pixels on its long side with its boxes and labels, titled above."""
    height, width = image.shape[:2]
    scale = cell / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    header = max(18, cell // 14)
    panel = Image.new("RGB", (cell, cell + header), "white")
    picture = Image.fromarray(image).resize(size, Image.BILINEAR)
    panel.paste(picture, (0, header))
    draw = ImageDraw.Draw(panel)
    font = _font(max(11, cell // 26))
    draw.text((4, 2), title, fill="black", font=_font(max(12, cell // 22)))
    for k, (box, label) in enumerate(zip(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), labels)):
        # an untrained detector may give x2 < x1 or boxes off the image: order and clip the corners
        xs = sorted(min(max(float(v) * scale, 0.0), size[0] - 1.0) for v in (box[0], box[2]))
        ys = sorted(min(max(float(v) * scale, 0.0), size[1] - 1.0) + header for v in (box[1], box[3]))
        (x1, x2), (y1, y2) = xs, ys
        colour = _colour(int(label))
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=max(2, cell // 160))
        name = classes[int(label)] if 0 <= int(label) < len(classes) else str(int(label))
        text = name if scores is None else f"{name} {float(scores[k]):.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), text, font=font)
        lift = min(bottom - top + 2, y1 - header)
        draw.rectangle([left, top - lift, right + 2, bottom - lift], fill=colour)
        draw.text((x1 + 1, y1 - lift), text, fill="black", font=font)
    return panel


def save_prediction_grid(model: Any, dataset: Any, out_file: str | Path, classes: Sequence[str] | None = None,
                         num_images: int = 6, per_row: int = 2, score_thr: float = 0.3, cell: int = 384) -> Path:
    """Write a grid of the first ``num_images`` images of ``dataset``: for each, ground truth | predictions
    (``score_thr`` and above), ``per_row`` images per row."""
    from detcore.apis import inference_detector
    from detcore.data.images import read_image

    classes = list(classes if classes is not None else getattr(dataset, "classes", []))
    panels = []
    for index in range(min(num_images, len(dataset))):
        record = dataset.get_data_info(index)
        image = read_image(record["filename"])
        ann = record.get("ann", {})
        gt_boxes = ann.get("bboxes", np.zeros((0, 4)))
        panels.append(draw_panel(image, gt_boxes, list(ann.get("labels", [])), classes, None, cell,
                                 f"{Path(record['filename']).name}: ground truth ({len(gt_boxes)})"))
        with torch.inference_mode():
            dets = inference_detector(model, record["filename"])
        keep = dets.scores >= score_thr
        panels.append(draw_panel(image, dets.boxes[keep].numpy(), dets.labels[keep].tolist(), classes,
                                 dets.scores[keep].tolist(), cell, f"predictions >= {score_thr:g} ({int(keep.sum())})"))
    if not panels:
        raise ValueError("save_prediction_grid: the dataset has no images")
    columns = 2 * per_row
    rows = (len(panels) + columns - 1) // columns
    pw, ph = panels[0].size
    gap = max(4, cell // 48)
    grid = Image.new("RGB", (columns * pw + (columns - 1) * gap, rows * ph + (rows - 1) * gap), (90, 90, 90))
    for i, panel in enumerate(panels):
        row, col = divmod(i, columns)
        grid.paste(panel, (col * (pw + gap), row * (ph + gap)))
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out_file)
    return out_file
