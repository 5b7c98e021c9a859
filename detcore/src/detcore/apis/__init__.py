"""High-level Python API: build a detector and run inference (sync and async), draw results."""

from detcore.apis.inference import (
    LoadImageFromArray,
    async_inference_detector,
    inference_detector,
    init_detector,
    prepare_batch,
    show_result,
)

__all__ = ["LoadImageFromArray", "async_inference_detector", "inference_detector", "init_detector", "prepare_batch",
           "show_result"]
