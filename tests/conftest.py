"""Shared cross-package fixtures: one small detector trained on the synthetic shapes data per test session
(used by the tools' tests: ONNX parity, robustness, error analysis, examples)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

SHAPES_SIZE = 96


@dataclass
class TrainedShapes:
    config_file: Path  # the merged config, pointed at data_dir, as a TOML file
    checkpoint: Path
    data_dir: Path  # shapes dataset: train/ (12 images, also the test split) and val/ (4 images)
    config_name: str


@pytest.fixture(scope="session")
def trained_shapes(tmp_path_factory) -> TrainedShapes:
    """A shapes config (FCOS when det-anchor-free is installed) trained for 80 iterations on 12 images;
    its test split is those 12 images."""
    from detcore.cli.commands import training as training_cli

    return train_on_shapes(tmp_path_factory.mktemp("trained_shapes"), training_cli.pick_demo_config(), epochs=20)


@pytest.fixture(scope="session")
def trained_two_stage(tmp_path_factory) -> TrainedShapes:
    """Mask R-CNN (``faster_rcnn_r18_fpn_shapes`` with a small mask branch) trained for 40 iterations on the same
    12 images (the two-stage ONNX export's test)."""
    pytest.importorskip("det_two_stage")

    def add_mask_branch(cfg) -> None:
        roi_head = cfg["model"]["roi_head"]
        cfg["model"]["type"] = "MaskRCNN"
        roi_head["mask_roi_extractor"] = {"type": "SingleRoIExtractor", "out_channels": 64,
                                          "featmap_strides": [4, 8, 16, 32],
                                          "roi_layer": {"type": "RoIAlign", "output_size": 14, "sampling_ratio": 0,
                                                        "aligned": True}}
        roi_head["mask_head"] = {"type": "FCNMaskHead", "num_convs": 2, "in_channels": 64, "conv_out_channels": 64,
                                 "num_classes": 3}
        cfg["model"]["train_cfg"]["rcnn"]["mask_size"] = 28
        cfg["model"]["test_cfg"]["rcnn"]["mask_thr_binary"] = 0.5
        for step in cfg["train_pipeline"]:
            if step["type"] == "LoadAnnotations":
                step["with_mask"] = True

    return train_on_shapes(tmp_path_factory.mktemp("trained_two_stage"), "faster_rcnn_r18_fpn_shapes", epochs=10,
                           edit=add_mask_branch)


def train_on_shapes(root: Path, name: str, epochs: int, edit=None) -> TrainedShapes:
    """Train config ``name`` (changed by ``edit(cfg)``) on 12 shapes images for ``epochs`` epochs of 4 iterations."""
    from detcore.cli.commands import training as training_cli
    from detcore.config import load_config
    from detcore.data.shapes import make_shapes
    from detcore.engine import Runner

    data_dir = root / "shapes"
    make_shapes(data_dir, num_train=12, num_val=4, size=SHAPES_SIZE, seed=0)
    cfg = load_config(name, [])
    if edit is not None:
        edit(cfg)
    training_cli._point_at_shapes(cfg, data_dir)
    training_cli._resize_pipelines(cfg, SHAPES_SIZE)
    training_cli._demo_schedule(cfg, epochs)
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        cfg[key]["num_workers"] = 0
    # evaluate on the training images: a short run can only be expected to fit what it has seen
    for key in ("val_dataloader", "test_dataloader"):
        cfg[key]["dataset"]["ann_file"] = "annotations/instances_train.json"
        cfg[key]["dataset"]["img_prefix"] = "train/"
    cfg["train_dataloader"]["batch_size"] = 3
    cfg["lr_config"] = {**cfg["lr_config"], "warmup_iters": 10}
    cfg["evaluation"] = {**dict(cfg.get("evaluation") or {}), "interval": 1000}
    cfg["seed"] = 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    runner = Runner.from_config(cfg, work_dir=root / "work")
    try:
        runner.train()
    finally:
        runner.close()
        torch.set_num_threads(threads)
    config_file = root / f"{name}_trained.toml"
    config_file.write_text(cfg.dump())
    checkpoint = root / "work" / "latest.pth"
    assert checkpoint.is_file(), sorted(p.name for p in (root / "work").iterdir())
    return TrainedShapes(config_file, checkpoint, data_dir, name)


@pytest.fixture
def count_compiled_calls(monkeypatch):
    """``start(*kernel_names)`` -> a dict counting, from then on, the calls of those det-ops-cuda kernels
    (``det_ops_cuda._C`` functions) while a detector runs: proof that an op reached the compiled backend."""

    def start(*names: str) -> dict[str, int]:
        from det_ops_cuda import backend as compiled

        calls = dict.fromkeys(names, 0)
        extension = compiled.extension()

        class Counting:
            def __getattr__(self, name):
                if name in calls:
                    calls[name] += 1
                return getattr(extension, name)

        monkeypatch.setattr(compiled, "extension", lambda: Counting())
        return calls

    return start


@pytest.fixture
def same_results_with_reference_ops():
    """``check(model, batch, grad_names)``: one training step and a prediction with the installed ops, then again
    from the same weights under ``use_backend("reference")``; asserts the losses (1e-4 relative), the named
    gradients of ``model.bbox_head`` and the detections (>= 99% matched, none empty) agree."""
    import copy

    import detcore.ops as ops
    from det_common.parity import match_rate

    def run(model, batch, initial):
        model.load_state_dict(initial)  # the same weights and BatchNorm statistics for both backends
        model.zero_grad()
        model.train()
        losses = model.loss(batch)
        sum(losses.values()).backward()
        grads = {name: p.grad.clone() for name, p in model.bbox_head.named_parameters() if p.grad is not None}
        model.eval()
        with torch.no_grad():
            detections = model.predict(batch)
        return {k: float(v.detach()) for k, v in losses.items()}, grads, detections

    def check(model, batch, grad_names) -> None:
        initial = copy.deepcopy(model.state_dict())
        installed_losses, installed_grads, installed_dets = run(model, batch, initial)
        with ops.use_backend("reference"):
            reference_losses, reference_grads, reference_dets = run(model, batch, initial)
        for name, value in reference_losses.items():
            assert abs(installed_losses[name] - value) <= 1e-4 * abs(value), (name, installed_losses[name], value)
        for name in grad_names:
            torch.testing.assert_close(installed_grads[name], reference_grads[name], rtol=1e-3, atol=1e-6)
        for ref, ours in zip(reference_dets, installed_dets):
            assert len(ref) > 0 and match_rate(ref, ours) >= 0.99

    return check
