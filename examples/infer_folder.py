"""Detect objects in every image of a folder: a drawing per image and one JSON of all detections."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from detcore.apis import inference_detector, init_detector, show_result

SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", help="config name or file (e.g. the config.toml train_custom_coco.py wrote)")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--score-thr", type=float, default=0.3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    images = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in SUFFIXES)
    model = init_detector(args.config, args.checkpoint, device=args.device)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for path in images:
        dets = inference_detector(model, path)
        keep = dets[dets.scores >= args.score_thr]
        show_result(path, dets, model.classes, out_file=args.out_dir / f"{path.stem}.png", score_thr=args.score_thr)
        records.append({"file": path.name, "detections": [
            {"box": [round(v, 2) for v in box.tolist()], "score": round(float(score), 4), "class": model.classes[int(label)]}
            for box, score, label in zip(keep.boxes, keep.scores, keep.labels)]})
    (args.out_dir / "detections.json").write_text(json.dumps(records, indent=1))
    print(f"{len(images)} images, {sum(len(r['detections']) for r in records)} detections -> {args.out_dir}")


if __name__ == "__main__":
    main()
