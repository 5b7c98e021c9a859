"""A deterministic synthetic COCO dataset of coloured shapes, small enough to train on a CPU.

Each image has a muted textured background (gradient, stripes or checks, noise) and 2-5
convex shapes (rectangle, ellipse, triangle; rotated, varied size and aspect ratio) that may
occlude each other. Every shape is a convex polygon; its visible part is computed exactly by
subtracting the shapes drawn above it (convex pieces), and written as polygon segmentation.
Shapes less than half visible are removed from the scene (not drawn), so every drawn shape is
annotated. Box and area are those of the rasterised visible polygons (pycocotools), and the
pixels are painted with the same rasteriser, so annotations match the drawn pixels.

With ``with_seg`` each image also gets a semantic map in COCO-stuff's layout
(``stuffthingmaps/<split>/<image stem>.png``, what MMDetection's HTC configs read through
``seg_prefix``): one class index per pixel, category id - 1 (the contiguous label here), and
``seg_background`` (255 = ignore by default) elsewhere.
"""

from __future__ import annotations

import colorsys
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

CATEGORIES = [
    {"id": 1, "name": "rectangle", "supercategory": "shape"},
    {"id": 2, "name": "ellipse", "supercategory": "shape"},
    {"id": 3, "name": "triangle", "supercategory": "shape"},
]
# Base hue (degrees) of each category: colour and shape both tell the classes apart.
CLASS_HUES = {1: 0.0, 2: 120.0, 3: 225.0}
SEG_DIR = "stuffthingmaps"  # semantic maps: SEG_DIR/<split>/<image stem>.png
MIN_VISIBLE = 0.5
MIN_PIECE_AREA = 1.0
ELLIPSE_VERTICES = 32

Polygon = np.ndarray  # (K, 2) float vertices, counter-clockwise in image coordinates


# -- convex polygon geometry ----------------------------------------------------------------
def polygon_area(poly: Polygon) -> float:
    """Signed shoelace area (positive when the vertices turn counter-clockwise in x-right, y-down)."""
    if len(poly) < 3:
        return 0.0
    x, y = poly[:, 0], poly[:, 1]
    x_next, y_next = np.concatenate((x[1:], x[:1])), np.concatenate((y[1:], y[:1]))
    return 0.5 * float(np.dot(x, y_next) - np.dot(y, x_next))


def clip_halfplane(poly: Polygon, a: np.ndarray, b: np.ndarray, keep_left: bool) -> Polygon:
    """The part of a convex polygon on one side of the line a->b (Sutherland-Hodgman step)."""
    if len(poly) == 0:
        return poly
    d = b - a
    side = d[0] * (poly[:, 1] - a[1]) - d[1] * (poly[:, 0] - a[0])
    if not keep_left:
        side = -side
    out = []
    for i in range(len(poly)):
        p, q = poly[i], poly[(i + 1) % len(poly)]
        sp, sq = side[i], side[(i + 1) % len(poly)]
        if sp >= 0:
            out.append(p)
        if (sp >= 0) != (sq >= 0):
            t = sp / (sp - sq)
            out.append(p + t * (q - p))
    return np.array(out, dtype=np.float64).reshape(-1, 2)


def clip_convex(poly: Polygon, window: Polygon) -> Polygon:
    """Intersection of a polygon with a convex counter-clockwise ``window``."""
    for i in range(len(window)):
        poly = clip_halfplane(poly, window[i], window[(i + 1) % len(window)], keep_left=True)
        if len(poly) < 3:
            return np.zeros((0, 2))
    return poly


def subtract_convex(poly: Polygon, hole: Polygon) -> list[Polygon]:
    """``poly`` minus a convex counter-clockwise ``hole``, as convex pieces."""
    if (poly.min(0) >= hole.max(0)).any() or (hole.min(0) >= poly.max(0)).any():
        return [poly]  # bounding boxes do not overlap
    pieces, rest = [], poly
    for i in range(len(hole)):
        a, b = hole[i], hole[(i + 1) % len(hole)]
        outside = clip_halfplane(rest, a, b, keep_left=False)
        if len(outside) >= 3 and polygon_area(outside) > 1e-6:
            pieces.append(outside)
        rest = clip_halfplane(rest, a, b, keep_left=True)
        if len(rest) < 3:
            break
    return pieces


def ccw(poly: Polygon) -> Polygon:
    return poly if polygon_area(poly) >= 0 else poly[::-1].copy()


# -- scene sampling -------------------------------------------------------------------------
def _shape_polygon(rng: np.random.Generator, category: int, size: int) -> Polygon:
    long_side = rng.uniform(0.18, 0.5) * size
    aspect = rng.uniform(0.5, 2.0)
    w, h = (long_side, long_side / aspect) if aspect >= 1 else (long_side * aspect, long_side)
    if category == 1:
        local = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
    elif category == 2:
        t = np.linspace(0, 2 * np.pi, ELLIPSE_VERTICES, endpoint=False)
        local = np.stack([np.cos(t) * w / 2, np.sin(t) * h / 2], axis=1)
    else:
        angles = np.deg2rad([-90.0, 30.0 + rng.uniform(-20, 20), 150.0 + rng.uniform(-20, 20)])
        local = np.stack([np.cos(angles) * w / 2, np.sin(angles) * h / 2], axis=1)
    theta = rng.uniform(0, np.pi) if rng.random() < 0.6 else 0.0
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    center = rng.uniform(0.12 * size, 0.88 * size, size=2)
    return ccw(local @ rot.T + center)


def _visible_pieces(polys: list[Polygon], size: int) -> list[list[Polygon]]:
    """Convex pieces of each polygon left visible by the image border and the later polygons."""
    window = np.array([[0, 0], [size, 0], [size, size], [0, size]], dtype=np.float64)
    out = []
    for i, poly in enumerate(polys):
        clipped = clip_convex(poly, window)
        pieces = [clipped] if len(clipped) >= 3 else []
        for above in polys[i + 1:]:
            pieces = [q for p in pieces for q in subtract_convex(p, above)]
        out.append(pieces)
    return out


def _sample_scene(rng: np.random.Generator, size: int) -> tuple[list[int], list[Polygon], list[list[Polygon]]]:
    count = int(rng.integers(2, 6))
    cats = [int(c) for c in rng.integers(1, 4, size=count)]
    polys = [_shape_polygon(rng, c, size) for c in cats]
    while True:
        pieces = _visible_pieces(polys, size)
        ratios = [sum(polygon_area(p) for p in ps) / polygon_area(poly) for ps, poly in zip(pieces, polys)]
        worst = int(np.argmin(ratios))
        if ratios[worst] >= MIN_VISIBLE:
            return cats, polys, pieces
        del cats[worst], polys[worst]


# -- rendering ------------------------------------------------------------------------------
def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Muted (low-saturation) gradient with optional stripes or checks, as float RGB."""
    def muted() -> np.ndarray:
        rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.25), rng.uniform(0.3, 0.85))
        return np.array(rgb) * 255

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    angle = rng.uniform(0, 2 * np.pi)
    t = (xx * np.cos(angle) + yy * np.sin(angle))
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    img = muted() * (1 - t[..., None]) + muted() * t[..., None]
    texture = rng.integers(3)
    if texture == 1:
        period, phi = rng.uniform(6, 20), rng.uniform(0, np.pi)
        img += 14 * np.sin(2 * np.pi * (xx * np.cos(phi) + yy * np.sin(phi)) * size / period)[..., None]
    elif texture == 2:
        cell = int(rng.integers(6, 20))
        checks = ((np.arange(size)[:, None] // cell + np.arange(size)[None, :] // cell) % 2) * 2 - 1
        img += 10 * checks[..., None]
    return img


def _object_colour(rng: np.random.Generator, category: int) -> np.ndarray:
    hue = ((CLASS_HUES[category] + rng.uniform(-18, 18)) % 360) / 360
    return np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0))) * 255


def _rasterise(polys: list[Polygon], size: int) -> np.ndarray:
    """(H, W) bool union of polygons, with pycocotools (the rasteriser COCO tools use)."""
    flat = [p.reshape(-1).tolist() for p in polys if len(p) >= 3]
    if not flat:
        return np.zeros((size, size), dtype=bool)
    rle = mask_utils.merge(mask_utils.frPyObjects(flat, size, size))
    return mask_utils.decode(rle).astype(bool)


def render_image(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One image (H, W, 3 uint8) and its objects (category, polygons, box xywh, area)."""
    cats, polys, pieces = _sample_scene(rng, size)
    img = _background(rng, size)
    for cat, poly in zip(cats, polys):
        colour = _object_colour(rng, cat)
        shade = rng.uniform(-12, 12, size=3)
        img[_rasterise([poly], size)] = colour + shade
    img += rng.normal(0, 4, size=img.shape)
    objects = []
    for cat, visible in zip(cats, pieces):
        rounded = [np.round(p, 2) for p in visible if abs(polygon_area(p)) >= MIN_PIECE_AREA]
        mask = _rasterise(rounded, size)
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            continue
        x0, y0 = int(xs.min()), int(ys.min())
        box = [float(x0), float(y0), float(xs.max() + 1 - x0), float(ys.max() + 1 - y0)]
        objects.append({
            "category_id": cat,
            "segmentation": [[round(float(v), 2) for v in p.reshape(-1)] for p in rounded],
            "bbox": box,
            "area": float(mask.sum()),
        })
    return np.clip(np.round(img), 0, 255).astype(np.uint8), objects


def semantic_map(objects: list[dict[str, Any]], size: int, background: int = 255) -> np.ndarray:
    """(H, W) uint8 map of ``render_image``'s objects: category id - 1 on each object's visible
    polygons (rasterised as its mask, later objects on top), ``background`` elsewhere."""
    seg = np.full((size, size), background, dtype=np.uint8)
    for obj in objects:
        polys = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in obj["segmentation"]]
        seg[_rasterise(polys, size)] = obj["category_id"] - 1
    return seg


def make_split(
    out_dir: Path, split: int, name: str, num_images: int, size: int, seed: int,
    seg_dir: Path | None = None, seg_background: int = 255,
) -> dict[str, Any]:
    """Write ``out_dir/name/*.png`` (and, with ``seg_dir``, ``seg_dir/*.png``); return the split's COCO dict."""
    (out_dir / name).mkdir(parents=True, exist_ok=True)
    if seg_dir is not None:
        seg_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(num_images):
        rng = np.random.default_rng([seed, split, i])
        pixels, objects = render_image(rng, size)
        file_name = f"{i:06d}.png"
        Image.fromarray(pixels).save(out_dir / name / file_name, compress_level=1)
        if seg_dir is not None:
            seg = semantic_map(objects, size, seg_background)
            Image.fromarray(seg, mode="L").save(seg_dir / file_name, compress_level=1)
        image_id = i + 1
        images.append({"id": image_id, "file_name": file_name, "width": size, "height": size})
        for obj in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "iscrowd": 0, **obj})
    return {
        "info": {"description": f"detcore synthetic shapes ({name}, seed {seed}, size {size})"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }


def make_shapes(
    out_dir: str | Path, num_train: int = 600, num_val: int = 100, size: int = 160, seed: int = 0,
    with_seg: bool = False, seg_background: int = 255,
) -> dict[str, Path]:
    """Write the shapes dataset (``train/``, ``val/``, ``annotations/instances_{train,val}.json``,
    and with ``with_seg`` the semantic maps ``stuffthingmaps/{train,val}/``).

    The same arguments always give byte-identical files. Returns the annotation paths by split
    (``train``, ``val``) and the semantic-map folders (``train_seg``, ``val_seg``): a dataset reads
    them with ``seg_prefix = "stuffthingmaps/train/"``.
    """
    if size < 32:
        raise ValueError(f"make_shapes: size must be at least 32 pixels, got {size}")
    if not len(CATEGORIES) <= seg_background <= 255:
        raise ValueError(
            f"make_shapes: seg_background must be in [{len(CATEGORIES)}, 255] (0..{len(CATEGORIES) - 1} are the "
            f"classes; 255 = ignore, {len(CATEGORIES)} = a background class), got {seg_background}"
        )
    out_dir = Path(out_dir)
    (out_dir / "annotations").mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, (name, count) in enumerate((("train", num_train), ("val", num_val))):
        seg_dir = out_dir / SEG_DIR / name if with_seg else None
        coco = make_split(out_dir, split, name, count, size, seed, seg_dir, seg_background)
        path = out_dir / "annotations" / f"instances_{name}.json"
        path.write_text(json.dumps(coco, separators=(",", ":")), encoding="utf-8")
        paths[name] = path
        if seg_dir is not None:
            paths[f"{name}_seg"] = seg_dir
    return paths
