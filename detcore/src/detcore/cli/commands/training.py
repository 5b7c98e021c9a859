"""``detcore train``, ``test`` and ``demo`` (manual `003` ch. 2; ``infer`` is in its own module); torch is imported inside handlers."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detcore.cli.options import add_inference_options, add_set_option

# OpenMP threads that sleep instead of spinning while they wait: on a CPU shared with other work,
# spinning threads of an idle-waiting team take cores from the busy ones and a training step can
# take several times longer. Read when torch loads (inside the handlers), so set here at import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Small shapes configs shipped by the detector families, in order of preference for `detcore demo`.
# FCOS first: on a CPU it reaches the best mAP in a given time (no anchors, cheap targets).
DEMO_CONFIGS = ("fcos_r18_fpn_shapes", "retinanet_r18_fpn_shapes", "faster_rcnn_r18_fpn_shapes")


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train a detector from a config")
    train.add_argument("config", help="config name (e.g. retinanet_r50_fpn_1x_coco) or path")
    train.add_argument("--work-dir", type=Path, help="where logs and checkpoints go (default: work_dirs/<config>)")
    train.add_argument("--resume", nargs="?", const=True, default=None, metavar="CKPT",
                       help="resume model, optimizer, schedule and RNG; without CKPT the latest in --work-dir")
    train.add_argument("--load-from", metavar="CKPT", help="start from these weights only (fine-tuning)")
    add_set_option(train)
    train.add_argument("--seed", type=int)
    train.add_argument("--deterministic", action="store_true", help="deterministic algorithms only")
    train.add_argument("--amp", action="store_true", help="mixed precision (bf16 on CPU, fp16 on CUDA)")
    train.add_argument("--launcher", choices=["none", "torchrun"], default="none",
                       help="torchrun: distributed data parallel, started with `torchrun --nproc_per_node=N`")
    train.set_defaults(handler=train_command)

    test = subparsers.add_parser("test", help="evaluate a checkpoint on the config's test data")
    test.add_argument("config")
    test.add_argument("checkpoint", type=Path)
    test.add_argument("--metrics", nargs="+", help="e.g. bbox segm proposal (COCO), mAP (VOC), cityscapes (CityscapesMetric)")
    test.add_argument("--out", type=Path,
                      help="write per-image predictions to this JSON file (an RPN's file is a proposal_file)")
    test.add_argument("--show-dir", type=Path, help="draw each image's predictions to DIR/<image name>.png")
    test.add_argument("--show-score-thr", type=float, default=0.3, help="score threshold of --show-dir drawings")
    test.add_argument("--format-only", action="store_true", help="only export COCO results JSON (no scores)")
    test.add_argument("--outfile-prefix", help="prefix of the exported JSON files (default: WORK_DIR/results)")
    test.add_argument("--work-dir", type=Path, help="where the log goes (default: the checkpoint's folder)")
    test.add_argument("--tta", action="store_true",
                      help="test-time augmentation: run the config's tta_pipeline (e.g. a flip MultiScaleFlipAug) "
                           "instead of its test pipeline; the model merges each image's views (predict_tta)")
    add_set_option(test)
    test.add_argument("--launcher", choices=["none", "torchrun"], default="none")
    add_inference_options(test)
    test.set_defaults(handler=test_command)

    demo = subparsers.add_parser("demo", help="make a shapes dataset, train a small detector, evaluate, draw")
    demo.add_argument("--work-dir", type=Path, default=Path("work_dirs/demo"))
    demo.add_argument("--config", help=f"shapes config to train (default: first installed of {', '.join(DEMO_CONFIGS)})")
    add_set_option(demo)
    demo.add_argument("--num-train", type=int, default=600, help="training images to generate")
    demo.add_argument("--num-val", type=int, default=100, help="validation images to generate")
    demo.add_argument("--image-size", type=int, default=160,
                      help="side of the generated images; the config's Resize steps are set to it")
    demo.add_argument("--epochs", type=int,
                      help="train this many epochs instead of the config's runner.max_epochs (lr steps scaled)")
    demo.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                      help="auto: bf16 AMP with channels-last on a CPU with AVX-512 BF16 / AMX (there 1.5x faster than fp32 "
                      "for the same mAP within 0.02 on average: README), else fp32; --set amp.* or channels_last=... "
                      "wins over this")
    demo.set_defaults(handler=demo_command)


# -- helpers ---------------------------------------------------------------------------------
def _default_work_dir(config: str) -> Path:
    return Path("work_dirs") / Path(config).stem


def _finish(runner: Any) -> None:
    from detcore.engine.dist import destroy_distributed

    runner.close()
    destroy_distributed()


# -- train -----------------------------------------------------------------------------------
def train_command(args: argparse.Namespace) -> int:
    from detcore.config import load_config
    from detcore.engine import Runner

    cfg = load_config(args.config, args.set)
    work_dir = args.work_dir or cfg.get("work_dir") or _default_work_dir(args.config)
    if args.resume is not None:
        cfg["resume"] = True if args.resume is True else str(args.resume)
    if args.load_from:
        cfg["load_from"] = args.load_from
    if args.seed is not None:
        cfg["seed"] = args.seed
    if args.deterministic:
        cfg["deterministic"] = True
    if args.amp:
        cfg["amp"] = {**dict(cfg.get("amp") or {}), "enable": True}
    runner = Runner.from_config(cfg, work_dir=work_dir, launcher=args.launcher)
    try:
        runner.train()
    finally:
        _finish(runner)
    return 0


# -- test ------------------------------------------------------------------------------------
def _test_config(cfg: Any, args: argparse.Namespace, work_dir: Path) -> dict[str, Any]:
    """The config without its training parts, with the command's metric options applied."""
    from detcore.errors import ConfigError

    test_cfg = dict(cfg)
    for key in ("train_dataloader", "val_dataloader", "optimizer", "resume", "load_from", "custom_hooks"):
        test_cfg.pop(key, None)
    if not test_cfg.get("test_dataloader"):
        raise ConfigError(f"config {getattr(cfg, 'source', args.config)} has no test_dataloader")
    if args.tta:
        if not isinstance(test_cfg.get("tta_pipeline"), list):
            raise ConfigError(f"--tta: config {getattr(cfg, 'source', args.config)} has no top-level tta_pipeline "
                              "list; add one (e.g. a MultiScaleFlipAug wrapping the test steps) or drop --tta")
        loader = dict(test_cfg["test_dataloader"])
        loader["dataset"] = {**dict(loader["dataset"]), "pipeline": "tta_pipeline"}
        test_cfg["test_dataloader"] = loader
    evaluation = dict(test_cfg.get("evaluation") or {})
    if args.metrics:
        evaluation["metric"] = list(args.metrics)
    if args.format_only:
        evaluation["format_only"] = True
        evaluation["outfile_prefix"] = args.outfile_prefix or str(work_dir / "results")
    elif args.outfile_prefix:
        evaluation["outfile_prefix"] = args.outfile_prefix
    evaluation.pop("interval", None)
    test_cfg["evaluation"] = evaluation
    return test_cfg


def _test_work_dir(args: argparse.Namespace, cfg: Any) -> Path:
    """Where ``test`` writes its log: --work-dir, the config's work_dir, else the checkpoint's folder
    (a temporary folder when that is not writable), never a ./work_dirs the user did not ask for."""
    import tempfile

    chosen = args.work_dir or cfg.get("work_dir")
    if chosen:
        return Path(chosen)
    folder = Path(args.checkpoint).resolve().parent
    if os.access(folder, os.W_OK):
        return folder
    return Path(tempfile.mkdtemp(prefix="detcore-test-"))


def json_safe(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics with NaN / inf (e.g. the AP of a class without ground truth, ``classwise``) as null:
    the final line stays valid JSON."""
    import math

    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}


def test_command(args: argparse.Namespace) -> int:
    from detcore.config import load_config
    from detcore.engine import Runner, load_weights
    from detcore.engine.amp import MixedPrecision, precision_settings
    from detcore.engine.dist import is_main_process
    from detcore.engine.validation import validate_config

    cfg = load_config(args.config, args.set)
    validate_config(cfg)  # the whole config, with the files that set each key
    work_dir = _test_work_dir(args, cfg)
    runner = Runner.from_config(_test_config(cfg, args, work_dir), work_dir=work_dir, launcher=args.launcher)
    try:
        load_weights(runner.module, args.checkpoint, strict=True, use="detcore test")
        runner.amp = MixedPrecision(precision_settings(args.precision, runner.device), runner.device)
        if args.fast:
            runner.module.optimize_for_inference()
        predictions: list[dict[str, Any]] | None = [] if args.out else None
        metrics = runner.test(predictions_out=predictions, show_dir=args.show_dir,
                              show_score_thr=args.show_score_thr, progress=True)
        if is_main_process():
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(predictions))
            if args.format_only:
                prefix = runner.test_metric.outfile_prefix
                print(f"wrote results with prefix {prefix}", file=sys.stderr)
            summary = getattr(runner.test_metric, "summary_text", "")
            if summary:
                print(summary)
            print(f"predicted {runner.test_throughput}", file=sys.stderr)
            print(json.dumps(json_safe(metrics), allow_nan=False))
    except BaseException as exc:
        runner.log_failure(exc)
        raise
    finally:
        _finish(runner)
    return 0


# -- infer: see detcore.cli.commands.infer ------------------------------------------------------


# -- demo ------------------------------------------------------------------------------------
def pick_demo_config(preferred: tuple[str, ...] = DEMO_CONFIGS) -> str:
    """The first shipped config of ``preferred`` that is installed."""
    from detcore.config import shipped_configs
    from detcore.errors import ConfigError

    available = {entry.name for entry in shipped_configs()}
    for name in preferred:
        if name in available:
            return name
    raise ConfigError(
        f"detcore demo needs one of the configs {', '.join(preferred)}; install a detector family "
        "(e.g. pip install det-anchor-free) or pass --config"
    )


def _point_at_shapes(cfg: dict[str, Any], data_dir: Path) -> None:
    """Make every dataloader read the generated shapes dataset."""
    splits = {"train_dataloader": "train", "val_dataloader": "val", "test_dataloader": "val"}
    for key, split in splits.items():
        loader = cfg.get(key)
        if not isinstance(loader, dict) or not isinstance(loader.get("dataset"), dict):
            continue
        dataset = loader["dataset"]
        dataset["data_root"] = str(data_dir)
        dataset["ann_file"] = f"annotations/instances_{split}.json"
        dataset["img_prefix"] = f"{split}/"


def _resize_pipelines(cfg: dict[str, Any], size: int) -> None:
    """Make every ``Resize`` of the config's pipelines resize to ``size`` x ``size`` (the shapes images' size)."""
    pipelines = [value for key, value in cfg.items() if key.endswith("pipeline") and isinstance(value, list)]
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        dataset = (cfg.get(key) or {}).get("dataset") if isinstance(cfg.get(key), dict) else None
        if isinstance(dataset, dict) and isinstance(dataset.get("pipeline"), list):
            pipelines.append(dataset["pipeline"])
    for pipeline in pipelines:
        for step in pipeline:
            if isinstance(step, dict) and str(step.get("type", "")).split("::")[-1] == "Resize":
                step["scale"] = [size, size]


def _demo_schedule(cfg: dict[str, Any], epochs: int | None) -> int:
    """Apply ``--epochs`` (the lr steps keep their fractions of the schedule); evaluate and save
    only after the last epoch. Returns the number of epochs."""
    runner_cfg = dict(cfg.get("runner") or {})
    old_epochs = int(runner_cfg.get("max_epochs", 1))
    new_epochs = old_epochs if epochs is None else int(epochs)
    cfg["runner"] = {"type": "EpochBasedRunner", "max_epochs": new_epochs}
    lr_cfg = cfg.get("lr_config")
    if epochs is not None and isinstance(lr_cfg, dict) and lr_cfg.get("steps") and lr_cfg.get("by_epoch", True):
        steps = [max(1, round(int(step) * new_epochs / old_epochs)) for step in lr_cfg["steps"]]
        cfg["lr_config"] = {**lr_cfg, "steps": [step for step in steps if step < new_epochs]}
    if isinstance(cfg.get("evaluation"), dict):
        cfg["evaluation"] = {**cfg["evaluation"], "interval": new_epochs}
    cfg["checkpoint"] = {**dict(cfg.get("checkpoint") or {}), "interval": new_epochs}
    return new_epochs


def _demo_precision(cfg: dict[str, Any], choice: str, overrides: Sequence[str]) -> str:
    """Set ``cfg``'s amp and channels_last for ``--precision`` and return the precision trained in.

    "auto" is bf16 on a CPU-only machine whose CPU has native bf16, fp32 otherwise. ``--set`` overrides of amp,
    fp16 or channels_last are the user's choice and are kept as they are.
    """
    import torch

    from detcore.engine.amp import cpu_has_native_bf16

    chosen = {item.lstrip("+").split("=", 1)[0].split(".", 1)[0] for item in overrides}
    if chosen & {"amp", "fp16", "channels_last"}:
        amp = cfg.get("amp") or cfg.get("fp16") or {}
        return "bf16" if isinstance(amp, dict) and amp.get("enable") else "fp32"
    if choice == "auto":
        choice = "bf16" if not torch.cuda.is_available() and cpu_has_native_bf16() else "fp32"
    if choice == "bf16":
        cfg["amp"] = {"enable": True, "dtype": "bfloat16"}
        cfg["channels_last"] = True
    return choice


def demo_command(args: argparse.Namespace) -> int:
    import time

    from detcore.apis import inference_detector, show_result
    from detcore.apis.inference import test_pipeline_config
    from detcore.apis.log_analysis import plot_curves
    from detcore.config import load_config
    from detcore.data.shapes import make_shapes
    from detcore.engine import Runner

    start = time.perf_counter()
    name = args.config or pick_demo_config()
    work_dir: Path = args.work_dir
    data_dir = work_dir / "shapes"
    make_shapes(data_dir, num_train=args.num_train, num_val=args.num_val, size=args.image_size, seed=0)
    cfg = load_config(name, args.set)
    _point_at_shapes(cfg, data_dir)
    _resize_pipelines(cfg, args.image_size)
    _demo_schedule(cfg, args.epochs)
    precision = _demo_precision(cfg, args.precision, args.set)
    cfg["log"] = {**dict(cfg.get("log") or {}), "interval": 1}  # every iteration: a detailed loss curve
    runner = Runner.from_config(cfg, work_dir=work_dir)
    try:
        runner.train()
        # the last epoch was evaluated on the val split (what the test loader reads too)
        metrics = dict(runner.val_metrics) if runner.val_metrics else runner.test()
        # visualization of the first validation image
        val_dataset = runner.test_dataloader.dataset if runner.test_dataloader is not None else runner.val_dataloader.dataset
        image_path = Path(val_dataset.get_data_info(0)["filename"])
        model = runner.module.eval()
        model.cfg, model.test_pipeline_cfg = cfg, test_pipeline_config(cfg)
        classes = list(getattr(val_dataset, "classes", []))
        instances = inference_detector(model, image_path)
        vis_path = work_dir / "demo_detections.png"
        show_result(image_path, instances, classes, out_file=vis_path, score_thr=0.3)
        # validation images with ground truth | predictions side by side, enlarged to be read
        from detcore.tools.demo_grid import save_prediction_grid

        grid_path = save_prediction_grid(model, val_dataset, work_dir / "demo_grid.png", classes)
        logger_hook = next(h for h in runner.hooks if type(h).__name__ == "LoggerHook")
        curve_path = plot_curves([logger_hook.json_path], ["loss"], work_dir / "demo_loss.png", title=name)
    finally:
        runner.close()
    print(json.dumps({"config": name, "precision": precision, "work_dir": str(work_dir), "visualization": str(vis_path),
                      "grid": str(grid_path), "loss_curve": str(curve_path), "seconds": round(time.perf_counter() - start, 1), **metrics}))
    return 0
