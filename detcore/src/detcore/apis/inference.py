"""High-level inference (`003` §2.1.3): build a detector from a config, run it on images, draw results.

Images are file paths or (H, W, 3) uint8 RGB numpy arrays. The config's ``test_pipeline`` prepares
them; for arrays its ``LoadImageFromFile`` step is replaced by :class:`LoadImageFromArray`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch import nn
from torchvision import tv_tensors

from detcore.errors import ConfigError, DataError
from detcore.interfaces import Transform
from detcore.structures import Instances, collate

ImageInput = Union[str, os.PathLike, np.ndarray]


class LoadImageFromArray(Transform):
    """Use ``results["img_array"]`` (H, W, 3 uint8 RGB) as the image; same keys as LoadImageFromFile."""

    def __init__(self, to_float32: bool = False) -> None:
        self.to_float32 = to_float32

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        array = results.get("img_array")
        if not isinstance(array, np.ndarray) or array.ndim != 3 or array.shape[2] != 3:
            shape = getattr(array, "shape", None)
            raise DataError(f"LoadImageFromArray needs an (H, W, 3) array, got {type(array).__name__} {shape}")
        pixels = torch.from_numpy(np.ascontiguousarray(array, dtype=np.uint8)).permute(2, 0, 1).contiguous()
        if self.to_float32:
            pixels = pixels.float()
        out = {k: v for k, v in results.items() if k != "img_array"}
        out["img"] = tv_tensors.Image(pixels)
        out["img_shape"] = tuple(pixels.shape[-2:])
        out["ori_shape"] = tuple(pixels.shape[-2:])
        out.setdefault("scale_factor", (1.0, 1.0))
        out.setdefault("bbox_fields", [])
        out.setdefault("mask_fields", [])
        out.setdefault("seg_fields", [])
        return out

    def __repr__(self) -> str:
        return f"LoadImageFromArray(to_float32={self.to_float32})"


def test_pipeline_config(cfg: Mapping[str, Any]) -> list[Any]:
    """The config's ``test_pipeline`` list (or the test dataset's pipeline) that inference runs."""
    pipeline = cfg.get("test_pipeline")
    if pipeline is None:
        dataset = (cfg.get("test_dataloader") or {}).get("dataset") or {}
        pipeline = dataset.get("pipeline")
        if isinstance(pipeline, str):
            pipeline = cfg.get(pipeline)
    if not isinstance(pipeline, list) or not pipeline:
        raise ConfigError("the config has no test_pipeline list, which inference needs to prepare images")
    return pipeline


def _classes_from_config(cfg: Mapping[str, Any]) -> list[str] | None:
    for key in ("test_dataloader", "val_dataloader", "train_dataloader"):
        dataset = (cfg.get(key) or {}).get("dataset") or {}
        if dataset.get("classes"):
            return list(dataset["classes"])
    return None


def init_detector(
    config: str | os.PathLike[str] | Mapping[str, Any],
    checkpoint: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    *,
    fast: bool = True,
    precision: str = "fp32",
) -> nn.Module:
    """Build the detector of ``config`` (name, path or loaded config), load ``checkpoint`` weights, eval mode.

    The model gets ``cfg`` (the config) and ``classes`` (from the checkpoint meta, else the config).
    ``fast`` (default) applies the detector's ``optimize_for_inference`` (BatchNorms folded into the
    convolutions, channels-last): same detections up to float rounding, but the model can no longer be
    trained or take another state dict; pass ``fast=False`` for the plain module. ``precision`` ("fp32",
    "bf16", or "fp16" on CUDA) is the autocast ``inference_detector`` runs the network in; post-processing
    stays in fp32.
    """
    from detcore.config import load_config
    from detcore.engine.amp import inference_dtype
    from detcore.engine.device import resolve_device
    from detcore.engine.checkpoint import compare_state, extract_state_dict, load_checkpoint, misfit_error
    from detcore.registry import build

    device = resolve_device(device)
    cfg = config if isinstance(config, Mapping) else load_config(config)
    if "model" not in cfg:
        raise ConfigError(f"config {getattr(cfg, 'source', config)} has no model table")
    model = build("detectors", cfg["model"])
    classes = _classes_from_config(cfg)
    if checkpoint is not None:
        data = load_checkpoint(checkpoint)
        state = extract_state_dict(data, checkpoint)
        report, usable = compare_state(model, state)
        if not report.fits:
            raise misfit_error(checkpoint, report, "Inference")
        model.load_state_dict(usable, strict=True)
        meta = data.get("meta") or {}
        if meta.get("classes"):
            classes = list(meta["classes"])
    model.cfg = cfg
    model.classes = classes
    model.test_pipeline_cfg = test_pipeline_config(cfg)
    model.inference_dtype = inference_dtype(precision, device)
    model = model.to(device).eval()
    if fast:
        model = model.optimize_for_inference()
    return model


def _pipeline_for(model: nn.Module, from_array: bool) -> Any:
    from detcore.data.transforms.compose import build_pipeline

    steps = list(getattr(model, "test_pipeline_cfg", None) or test_pipeline_config(model.cfg))
    if from_array:
        replaced = []
        for step in steps:
            if isinstance(step, Mapping) and step.get("type") == "LoadImageFromFile":
                replaced.append(LoadImageFromArray(**{k: v for k, v in step.items() if k != "type"}))
            else:
                replaced.append(step)
        steps = replaced
    return build_pipeline(steps)


def _prepare(model: nn.Module, image: ImageInput, index: int) -> Any:
    if isinstance(image, np.ndarray):
        results = {"img_array": image, "img_id": index, "filename": f"array_{index}"}
        return _pipeline_for(model, from_array=True)(results)
    path = Path(image)
    if not path.is_file():
        raise DataError(f"image file {path} does not exist")
    results = {"filename": str(path), "ori_filename": path.name, "img_id": index}
    return _pipeline_for(model, from_array=False)(results)


def prepare_batch(model: nn.Module, images: ImageInput | Sequence[ImageInput]) -> Any:
    """The model's test pipeline applied to the images and collated into one ``Batch`` on the model's device
    (pipelines without test-time augmentation only)."""
    items = [images] if isinstance(images, (str, os.PathLike, np.ndarray)) else list(images)
    samples = [_prepare(model, img, i) for i, img in enumerate(items)]
    if any(s is None or isinstance(s, list) for s in samples):
        raise DataError("prepare_batch needs a test pipeline that keeps every image and has no MultiScaleFlipAug")
    return collate(samples).to(next(model.parameters()).device)


def inference_detector(model: nn.Module, images: ImageInput | Sequence[ImageInput]) -> Instances | list[Instances]:
    """Detections (boxes in original pixels) for one image or a list; returns the same shape as given.

    Runs in ``torch.inference_mode`` and in the precision ``init_detector`` was given; fields come back
    on the CPU in float32.
    """
    from detcore.engine.amp import autocast_for
    from detcore.engine.evaluation import as_float32

    single = isinstance(images, (str, os.PathLike, np.ndarray))
    items = [images] if single else list(images)
    if not items:
        return []
    device = next(model.parameters()).device
    samples = [_prepare(model, img, i) for i, img in enumerate(items)]
    if any(s is None for s in samples):
        raise DataError("the test pipeline dropped an input image; test pipelines must keep every image")
    with torch.inference_mode(), autocast_for(device, getattr(model, "inference_dtype", None)):
        if isinstance(samples[0], list):  # MultiScaleFlipAug: one sample per view
            results = []
            for views in samples:
                batches = [collate([v]).to(device) for v in views]
                results.extend(model.predict_tta(batches))
        else:
            results = model.predict(collate(samples).to(device), rescale=True)
    results = as_float32(results)
    return results[0] if single else results


async def async_inference_detector(
    model: nn.Module, images: ImageInput | Sequence[ImageInput]
) -> Instances | list[Instances]:
    """``inference_detector`` in a worker thread, so an asyncio program keeps running while the model does."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, inference_detector, model, images)


def _load_rgb(image: ImageInput) -> np.ndarray:
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise DataError(f"show_result needs an (H, W, 3) image array, got shape {image.shape}")
        return np.ascontiguousarray(image, dtype=np.uint8)
    from detcore.data.images import read_image

    return read_image(image)


def show_result(
    image: ImageInput,
    instances: Instances,
    classes: Sequence[str] | None = None,
    out_file: str | os.PathLike[str] | None = None,
    score_thr: float = 0.3,
    mask_alpha: float = 0.5,
) -> np.ndarray:
    """Draw boxes, "class score" labels and masks of detections scoring >= ``score_thr``.

    Returns the drawn (H, W, 3) uint8 image and writes it to ``out_file`` when given.
    """
    from PIL import Image
    from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

    pixels = torch.from_numpy(np.array(_load_rgb(image), copy=True)).permute(2, 0, 1).contiguous()
    inst = instances.to("cpu")
    if len(inst) and inst.has("scores"):
        inst = inst[inst.scores >= score_thr]
    if len(inst):
        labels = inst.labels.tolist() if inst.has("labels") else [0] * len(inst)
        scores = inst.scores.tolist() if inst.has("scores") else [None] * len(inst)
        palette = _palette(max(labels) + 1)
        colors = [palette[label] for label in labels]
        if inst.has("masks"):
            masks = inst.masks.bool()
            pixels = draw_segmentation_masks(pixels, masks, alpha=mask_alpha, colors=colors)
        names = []
        for label, score in zip(labels, scores):
            name = classes[label] if classes is not None and 0 <= label < len(classes) else str(label)
            names.append(name if score is None else f"{name} {score:.2f}")
        pixels = draw_bounding_boxes(pixels, _drawable_boxes(inst.boxes, pixels.shape[-2:]), labels=names,
                                     colors=colors, width=2)
    drawn = pixels.permute(1, 2, 0).numpy()
    if out_file is not None:
        Path(out_file).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(drawn).save(out_file)
    return drawn


def _drawable_boxes(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Boxes with ordered corners clipped to the image (an untrained model may predict x2 < x1)."""
    boxes = boxes.float()
    x1, x2 = torch.minimum(boxes[:, 0], boxes[:, 2]), torch.maximum(boxes[:, 0], boxes[:, 2])
    y1, y2 = torch.minimum(boxes[:, 1], boxes[:, 3]), torch.maximum(boxes[:, 1], boxes[:, 3])
    height, width = int(size[0]), int(size[1])
    return torch.stack(
        [x1.clamp(0, width - 1), y1.clamp(0, height - 1), x2.clamp(0, width - 1), y2.clamp(0, height - 1)], dim=1
    )


def _palette(n: int) -> list[tuple[int, int, int]]:
    """``n`` distinct, deterministic RGB colours (golden-ratio hue steps)."""
    import colorsys

    colors = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.75, 0.95)
        colors.append((int(r * 255), int(g * 255), int(b * 255)))
    return colors
