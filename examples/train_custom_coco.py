"""Train a detector on your own COCO-format data through the Python API, then evaluate it.

Your data: one folder of images per split and one COCO annotation JSON per split, e.g.

    my_data/train/*.jpg   my_data/annotations/instances_train.json
    my_data/val/*.jpg     my_data/annotations/instances_val.json

The class names are read from the annotation file's categories. Start from any shipped config
(``detcore list-configs``) and point its datasets at your folders.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from detcore.config import load_config
from detcore.engine import Runner


def class_names(ann_file: Path) -> list[str]:
    categories = json.loads(ann_file.read_text())["categories"]
    return [c["name"] for c in sorted(categories, key=lambda c: c["id"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--config", default="fcos_r18_fpn_shapes", help="shipped config to start from")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--image-size", type=int, default=160, help="images are resized to fit this square")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    classes = class_names(args.data_root / "annotations" / "instances_train.json")
    cfg = load_config(args.config)
    cfg["model"]["bbox_head"]["num_classes"] = len(classes)
    for loader, split in (("train_dataloader", "train"), ("val_dataloader", "val"), ("test_dataloader", "val")):
        dataset = cfg[loader]["dataset"]
        dataset.update(data_root=str(args.data_root), ann_file=f"annotations/instances_{split}.json",
                       img_prefix=f"{split}/", classes=classes)
        cfg[loader]["num_workers"] = 0
    cfg["train_dataloader"]["batch_size"] = args.batch_size
    for pipeline in (cfg["train_pipeline"], cfg["test_pipeline"]):
        for step in pipeline:
            if step["type"] == "Resize":
                step["scale"] = [args.image_size, args.image_size]
    cfg["runner"] = {"type": "EpochBasedRunner", "max_epochs": args.epochs}
    cfg["lr_config"] = {**cfg["lr_config"], "steps": [max(1, args.epochs * 3 // 4)],
                        "warmup_iters": min(100, cfg["lr_config"].get("warmup_iters", 100))}
    cfg["evaluation"] = {**cfg["evaluation"], "interval": args.epochs}
    cfg["checkpoint"] = {"interval": args.epochs, "max_keep": 1}

    args.work_dir.mkdir(parents=True, exist_ok=True)
    (args.work_dir / "config.toml").write_text(cfg.dump())  # for `detcore test` / infer_folder.py later
    runner = Runner.from_config(cfg, work_dir=args.work_dir)
    try:
        runner.train()
        metrics = dict(runner.val_metrics)
    finally:
        runner.close()
    print(json.dumps({"classes": classes, "checkpoint": str(args.work_dir / "latest.pth"), **metrics}))


if __name__ == "__main__":
    main()
