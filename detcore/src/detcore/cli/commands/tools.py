"""``detcore publish-model``, ``flops``, ``export``, ``analyze-results`` and ``test-robustness``
(manual `003` §2.3); the logic lives in :mod:`detcore.tools`, torch is imported inside handlers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    pub = subparsers.add_parser(
        "publish-model", help="strip training state from a checkpoint and append its sha256 prefix to the name",
        description="Keep the weights (CPU tensors) and meta, drop optimizer / scheduler / RNG state, and write "
        "OUT with the first 8 hex digits of its sha256 appended: OUT.pth -> OUT-1a2b3c4d.pth.")
    pub.add_argument("input", type=Path, help="checkpoint written by detcore train (or MMDetection)")
    pub.add_argument("output", type=Path, help="output file name before the hash is appended")
    pub.set_defaults(handler=publish_model_command)

    fl = subparsers.add_parser(
        "flops", help="parameters and FLOPs of a config's detector, per module and in total",
        description="Counts with torch.utils.flop_counter (matmul/conv/attention ops only: normalisation, "
        "activations and NMS are not counted). FLOPs depend on the input shape, and for two-stage detectors on "
        "the number of proposals; parameters do not. 1 multiply-add = 2 FLOPs (GMac = GFLOPs / 2).")
    fl.add_argument("config", help="config name or path")
    fl.add_argument("--shape", nargs="+", type=int, default=[1280, 800], metavar="N",
                    help="input H W (one value: square); default 1280 800 as in the manual")
    fl.add_argument("--mode", choices=["predict", "tensor"], default="predict",
                    help="predict: the whole test-time forward; tensor: the network without post-processing")
    fl.add_argument("--depth", type=int, default=2, help="module nesting depth of the table")
    fl.add_argument("--json", type=Path, help="also write the report as JSON")
    fl.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE")
    fl.set_defaults(handler=flops_command)

    exp = subparsers.add_parser("export", help="export a trained detector (onnx)")
    formats = exp.add_subparsers(dest="format", metavar="FORMAT", required=True)
    onnx = formats.add_parser(
        "onnx", help="the network as ONNX with dynamic batch and image size (needs detcore[onnx])",
        description="Exports backbone, neck and head up to their raw per-level maps. Post-processing (score "
        "filter, top-k, box decoding, NMS) is outside the graph: detcore.tools.onnx_export.OnnxDetector runs the "
        "graph in onnxruntime and then the head's own post-processing. Two-stage detectors (Faster / Mask R-CNN) "
        "are written as OUT.onnx (features and RPN maps), OUT.rcnn.onnx (RoIAlign and box head) and OUT.mask.onnx "
        "(mask head); the proposal selection between them and the final NMS are detcore's code too.")
    onnx.add_argument("config")
    onnx.add_argument("checkpoint", type=Path)
    onnx.add_argument("out", type=Path, metavar="OUT.onnx")
    onnx.add_argument("--shape", nargs="+", type=int, default=[800, 1344], metavar="N",
                      help="H W of the example input that is traced (the exported size is dynamic)")
    onnx.add_argument("--opset", type=int, default=17)
    onnx.add_argument("--verify", type=Path, metavar="IMAGE",
                      help="run IMAGE through detcore and onnxruntime and print the largest differences")
    onnx.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE")
    onnx.set_defaults(handler=export_onnx_command)

    ana = subparsers.add_parser(
        "analyze-results", help="COCO error analysis (C75, C50, Loc, Sim, Oth, BG, FN) per class, as PNG plots",
        description="Stacked precision-recall areas per class and over all classes, per object size: C75 / C50 "
        "(IoU .75 / .5), Loc (IoU .1), Sim (supercategory confusions forgiven), Oth (all class confusions "
        "forgiven), BG (background false positives forgiven), FN (missed objects forgiven).")
    ana.add_argument("result_file", type=Path,
                     help="COCO results JSON, e.g. WORK_DIR/results.bbox.json from detcore test --format-only")
    ana.add_argument("ann_file", type=Path, help="COCO annotation JSON of the same images")
    ana.add_argument("--out-dir", type=Path, required=True)
    ana.add_argument("--type", dest="iou_type", choices=["bbox", "segm"], default="bbox")
    ana.add_argument("--areas", nargs="+", choices=["all", "small", "medium", "large"],
                     default=["all", "small", "medium", "large"])
    ana.set_defaults(handler=analyze_results_command)

    rob = subparsers.add_parser(
        "test-robustness", help="accuracy under the 15 ImageNet-C corruptions: table, mPC, rPC and a JSON",
        description="Evaluates the checkpoint on the config's test data clean and under each corruption and "
        "severity (a Corrupt step after image loading). mPC = mean over corruptions and severities >= 1 of the "
        "metric; rPC = mPC / clean metric (Michaelis et al., 2019).")
    rob.add_argument("config")
    rob.add_argument("checkpoint", type=Path)
    rob.add_argument("--corruptions", nargs="+", default=["benchmark"], metavar="NAME",
                     help="corruption names or groups: benchmark (all 15), noise, blur, weather, digital")
    rob.add_argument("--severities", nargs="+", type=int, default=[1, 2, 3, 4, 5], metavar="S",
                     help="severities 1..5 (clean is always evaluated)")
    rob.add_argument("--metric-key", help="result key to report (default: bbox_mAP, else mAP, else segm_mAP)")
    rob.add_argument("--metrics", nargs="+", help="evaluation metrics, e.g. bbox segm (COCO) or mAP (VOC)")
    rob.add_argument("--out", type=Path, help="JSON file (default: WORK_DIR/robustness.json)")
    rob.add_argument("--work-dir", type=Path, default=Path("work_dirs/robustness"))
    rob.add_argument("--seed", type=int, default=0, help="seed of the corruptions' randomness")
    rob.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE")
    rob.set_defaults(handler=test_robustness_command)


def publish_model_command(args: argparse.Namespace) -> int:
    from detcore.tools.publish import publish_model

    final = publish_model(args.input, args.output)
    print(f"wrote {final}")
    return 0


def _shape(values: list[int]) -> tuple[int, int]:
    from detcore.errors import ConfigError

    if len(values) == 1:
        return values[0], values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise ConfigError(f"--shape takes H W or one side, got {len(values)} values")


def _build_detector(config: str, overrides: list[str]):
    from detcore.config import load_config
    from detcore.errors import ConfigError
    from detcore.registry import build

    cfg = load_config(config, overrides)
    if "model" not in cfg:
        raise ConfigError(f"config {config} has no [model] table")
    return build("detectors", cfg["model"])


def flops_command(args: argparse.Namespace) -> int:
    from detcore.tools.flops import detector_flops

    height, width = _shape(args.shape)
    report = detector_flops(_build_detector(args.config, args.set), height, width, args.mode, args.depth)
    print(f"input shape: (1, 3, {height}, {width})   mode: {args.mode}")
    print(report.table())
    print(f"FLOPs: {report.gflops:.3f} G ({report.gmacs:.3f} GMac)   params: {report.total_params / 1e6:.3f} M")
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=1))
    return 0


def export_onnx_command(args: argparse.Namespace) -> int:
    from detcore.apis import inference_detector, init_detector
    from detcore.config import load_config
    from detcore.tools.onnx_export import OnnxDetector, export_onnx, exported_files

    cfg = load_config(args.config, args.set)
    model = init_detector(cfg, args.checkpoint)
    height, width = _shape(args.shape)
    out = export_onnx(model, args.out, height, width, opset=args.opset, classes=model.classes)
    print(f"wrote {', '.join(str(p) for p in exported_files(out))} (post-processing outside the graph: OnnxDetector)")
    if args.verify:
        ours = inference_detector(model, args.verify)
        theirs = OnnxDetector(out, cfg, args.checkpoint)(args.verify)
        n = min(len(ours), len(theirs))
        box_diff = float((ours.boxes[:n] - theirs.boxes[:n]).abs().max()) if n else 0.0
        score_diff = float((ours.scores[:n] - theirs.scores[:n]).abs().max()) if n else 0.0
        print(json.dumps({"detections": [len(ours), len(theirs)], "max_box_diff": box_diff,
                          "max_score_diff": score_diff}))
    return 0


def analyze_results_command(args: argparse.Namespace) -> int:
    from detcore.tools.error_analysis import BUCKETS, analyze_results

    summary = analyze_results(args.result_file, args.ann_file, args.out_dir, args.iou_type, tuple(args.areas))
    area = args.areas[0]
    print(f"{'class':<24}" + "".join(f"{b:>8}" for b in BUCKETS) + f"   (area {area})")
    for name, per_area in summary.items():
        print(f"{name:<24}" + "".join(f"{per_area[area][b]:>8.3f}" for b in BUCKETS))
    print(f"wrote plots and summary.json to {args.out_dir / args.iou_type}")
    return 0


def test_robustness_command(args: argparse.Namespace) -> int:
    from detcore.config import load_config
    from detcore.data.corruptions import GROUPS
    from detcore.tools.robustness import run_robustness

    cfg = load_config(args.config, args.set)
    if args.metrics:
        cfg["evaluation"] = {**dict(cfg.get("evaluation") or {}), "metric": list(args.metrics)}
    corruptions: list[str] = []
    for name in args.corruptions:
        for item in GROUPS.get(name, (name,)):
            if item not in corruptions:
                corruptions.append(item)
    out = args.out or args.work_dir / "robustness.json"
    report = run_robustness(cfg, args.checkpoint, corruptions, args.severities, args.work_dir,
                            metric_key=args.metric_key, seed=args.seed, out_json=out)
    print(report.table())
    print(f"wrote {out}")
    return 0
