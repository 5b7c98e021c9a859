"""``detcore infer``: detections drawn on images, folders of images, videos or a camera.

Images: each drawing keeps the input's path relative to the inputs' common folder (so ``a/x.png``
and ``b/x.png`` never overwrite each other); unreadable files are reported and skipped;
``detections.json`` always lists what succeeded; the exit status is 1 when any input failed.
Videos and cameras (an integer index) need OpenCV (``pip install "detcore[video]"``) and give an
annotated ``.mp4`` with a progress bar.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from detcore.cli.options import add_inference_options, add_set_option

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
PARTIAL_FAILURE = 1  # exit status when some inputs could not be processed


def register(subparsers: argparse._SubParsersAction) -> None:
    infer = subparsers.add_parser(
        "infer", help="detect objects in images, folders, videos or a camera and draw them",
        description="Draw detections. INPUT is an image, a folder (searched recursively for images), a video "
        "file or a camera index (0, 1, ...). Exit status 1 if some inputs failed (the others are written).",
    )
    infer.add_argument("config")
    infer.add_argument("checkpoint", type=Path)
    infer.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, video files or camera indices")
    infer.add_argument("--out-dir", type=Path, required=True)
    infer.add_argument("--score-thr", type=float, default=0.3)
    infer.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    infer.add_argument("--max-frames", type=int, help="stop a video or camera after this many frames")
    add_set_option(infer)
    add_inference_options(infer)
    infer.set_defaults(handler=infer_command)


# -- inputs ----------------------------------------------------------------------------------------
class Inputs:
    """What the INPUT arguments name: images (with their output names), videos, cameras, and the
    files that were passed over (not images) with why."""

    def __init__(self) -> None:
        self.images: list[Path] = []
        self.videos: list[Path] = []
        self.cameras: list[int] = []
        self.ignored: list[Path] = []


def collect_inputs(items: list[str]) -> Inputs:
    from detcore.errors import DataError

    found = Inputs()
    for text in items:
        path = Path(text)
        if text.isdigit() and not path.exists():
            found.cameras.append(int(text))
        elif path.is_dir():
            for child in sorted(path.rglob("*")):
                if not child.is_file() or any(part.startswith(".") for part in child.relative_to(path).parts):
                    continue
                if child.suffix.lower() in IMAGE_SUFFIXES:
                    found.images.append(child)
                else:
                    found.ignored.append(child)
        elif path.is_file():
            (found.videos if path.suffix.lower() in VIDEO_SUFFIXES else found.images).append(path)
        else:
            raise DataError(f"input {path} does not exist (give image files, folders, video files or camera indices)")
    if not (found.images or found.videos or found.cameras):
        raise DataError(
            f"no images or videos found in {', '.join(items)}"
            + (f" ({len(found.ignored)} other file(s), e.g. {found.ignored[0]})" if found.ignored else "")
            + f"; image suffixes: {', '.join(IMAGE_SUFFIXES)}"
        )
    return found


def output_names(images: list[Path]) -> dict[Path, Path]:
    """Each image's drawing path relative to the output folder: its path below the images' common
    folder, as PNG (``x.jpg`` -> ``x.png``; ``x.jpg.png`` when ``x.png`` is also an input)."""
    if not images:
        return {}
    resolved = [p.resolve() for p in images]
    common = Path(os.path.commonpath([str(p.parent) for p in resolved]))
    relative = [p.relative_to(common) for p in resolved]
    plain = [r.with_suffix(".png") for r in relative]
    counts: dict[Path, int] = {}
    for name in plain:
        counts[name] = counts.get(name, 0) + 1
    return {image: (name if counts[name] == 1 or rel == name else rel.with_name(rel.name + ".png"))
            for image, rel, name in zip(images, relative, plain)}


def detections(instances: Any, classes: Any, score_thr: float) -> list[dict[str, Any]]:
    """JSON-ready detections above ``score_thr``."""
    inst = instances[instances.scores >= score_thr] if len(instances) else instances
    out = []
    for i in range(len(inst)):
        label = int(inst.labels[i])
        out.append({
            "bbox": [round(float(v), 2) for v in inst.boxes[i].tolist()],
            "score": round(float(inst.scores[i]), 4),
            "label": label,
            "class": classes[label] if classes and 0 <= label < len(classes) else str(label),
        })
    return out


def detections_record(path: Path, instances: Any, classes: Any, score_thr: float) -> dict[str, Any]:
    """The ``detections.json`` record of one image."""
    return {"file": str(path), "detections": detections(instances, classes, score_thr)}


# -- the command -------------------------------------------------------------------------------------
def infer_command(args: argparse.Namespace) -> int:
    from detcore.apis import init_detector
    from detcore.config import load_config
    from detcore.engine.validation import check_model_cfg_keys

    inputs = collect_inputs([str(i) for i in args.inputs])
    if inputs.videos or inputs.cameras:
        video_module()  # a missing OpenCV is reported before the model is built
    cfg = load_config(args.config, args.set)
    if isinstance(cfg.get("model"), dict):
        check_model_cfg_keys(cfg["model"], cfg)
    model = init_detector(cfg, args.checkpoint, device=args.device, fast=args.fast, precision=args.precision)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    failures: list[str] = []
    for path in inputs.ignored:
        print(f"detcore infer: skipped {path}: not an image (suffix {path.suffix or 'none'})", file=sys.stderr)
    drawn = infer_images(model, inputs.images, args, records, failures)
    videos = [infer_video(model, source, args, records, failures) for source in [*inputs.videos, *inputs.cameras]]
    out_json = args.out_dir / "detections.json"
    out_json.write_text(json.dumps(records, indent=1))
    written = f"drew {drawn} image(s)" + (f" and {sum(v is not None for v in videos)} video(s)" if videos else "")
    print(f"{written} into {args.out_dir} and wrote {out_json}")
    if inputs.ignored:
        print(f"detcore infer: {len(inputs.ignored)} non-image file(s) in the folders were skipped", file=sys.stderr)
    if failures:
        print(f"detcore infer: {len(failures)} input(s) failed and were skipped (the others were written):",
              file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return PARTIAL_FAILURE
    return 0


def infer_images(model: Any, images: list[Path], args: argparse.Namespace, records: list[dict[str, Any]],
                 failures: list[str]) -> int:
    """Draw every readable image; unreadable ones go to ``failures``. Returns the number drawn."""
    from detcore.apis import inference_detector, show_result
    from detcore.errors import DataError

    names = output_names(images)
    drawn = 0
    for path in images:
        try:
            instances = inference_detector(model, path)
        except DataError as exc:
            failures.append(str(exc))
            continue
        show_result(path, instances, model.classes, out_file=args.out_dir / names[path], score_thr=args.score_thr)
        records.append({**detections_record(path, instances, model.classes, args.score_thr),
                        "drawing": str(names[path])})
        drawn += 1
    return drawn


# -- videos and cameras ----------------------------------------------------------------------------
def video_module() -> Any:
    """OpenCV, which reads and writes videos; a named error with the install command when missing."""
    from detcore.errors import DetcoreError

    try:
        import cv2
    except ImportError as exc:
        raise DetcoreError(
            "video and camera input need OpenCV, which is not installed: pip install \"detcore[video]\" "
            "(or pip install opencv-python-headless); images work without it"
        ) from exc
    return cv2


def infer_video(model: Any, source: Path | int, args: argparse.Namespace, records: list[dict[str, Any]],
                failures: list[str]) -> Path | None:
    """Detections on every frame of a video file or camera, drawn into ``OUT_DIR/<name>.mp4``."""
    from detcore.apis import inference_detector, show_result
    from detcore.engine.progress import Progress

    cv2 = video_module()
    capture = cv2.VideoCapture(source if isinstance(source, int) else str(source))
    label = f"camera {source}" if isinstance(source, int) else str(source)
    if not capture.isOpened():
        failures.append(f"{label}: cannot be opened as a video (missing codec, not a video, or no such camera)")
        return None
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if not isinstance(source, int) else 0
    total = min(frames, args.max_frames) if frames > 0 and args.max_frames else (frames or args.max_frames)
    out_path = args.out_dir / (f"camera{source}.mp4" if isinstance(source, int) else f"{Path(source).stem}.mp4")
    writer = None
    bar = Progress(total, label)
    index = 0
    try:
        while args.max_frames is None or index < args.max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            instances = inference_detector(model, rgb)
            drawn = show_result(rgb, instances, model.classes, score_thr=args.score_thr)
            if writer is None:
                height, width = drawn.shape[:2]
                writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
            writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
            records.append({"file": label, "frame": index,
                            "detections": detections(instances, model.classes, args.score_thr)})
            index += 1
            bar.update()
    except KeyboardInterrupt:  # a camera runs until interrupted: keep what was written
        print(f"\ndetcore infer: {label} stopped after {index} frame(s)", file=sys.stderr)
    finally:
        bar.close()
        capture.release()
        if writer is not None:
            writer.release()
    if index == 0:
        failures.append(f"{label}: no frame could be read")
        return None
    return out_path
