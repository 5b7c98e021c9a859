"""``detcore make-shapes`` (synthetic COCO data) and ``detcore browse-dataset`` (draw a pipeline's output)."""

from __future__ import annotations

import argparse
from pathlib import Path

from detcore.cli.options import add_set_option


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "make-shapes", help="write the deterministic synthetic shapes dataset (COCO format)"
    )
    p.add_argument("out_dir", type=Path, help="folder for train/, val/ and annotations/")
    p.add_argument("--num-train", type=int, default=600)
    p.add_argument("--num-val", type=int, default=100)
    p.add_argument("--size", type=int, default=160, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--with-seg", action="store_true",
                   help="also write semantic maps (stuffthingmaps/{train,val}/*.png: class index per pixel; "
                   "read them with the dataset key seg_prefix = \"stuffthingmaps/train/\")")
    p.add_argument("--seg-background", type=int, default=255,
                   help="value of background pixels in the semantic maps (255 = ignore, the default; "
                   "3 = a background class)")
    p.set_defaults(handler=make_shapes_command)

    b = subparsers.add_parser(
        "browse-dataset", help="draw the training pipeline's output (boxes, labels, masks) to PNGs"
    )
    b.add_argument("config", help="config file or shipped config name")
    b.add_argument("--out-dir", type=Path, required=True)
    b.add_argument("--num", type=int, default=10, help="number of images to draw")
    add_set_option(b, dest="overrides")
    b.set_defaults(handler=browse_dataset_command)


def make_shapes_command(args: argparse.Namespace) -> int:
    import time

    from detcore.data.shapes import make_shapes

    start = time.perf_counter()
    paths = make_shapes(args.out_dir, num_train=args.num_train, num_val=args.num_val, size=args.size,
                        seed=args.seed, with_seg=args.with_seg, seg_background=args.seg_background)
    elapsed = time.perf_counter() - start
    print(f"wrote {args.num_train} train and {args.num_val} val images ({args.size}px) in {elapsed:.1f}s")
    for name, path in paths.items():
        print(f"  {name}: {path}")
    return 0


def browse_dataset_command(args: argparse.Namespace) -> int:
    from detcore.config import load_config
    from detcore.errors import ConfigError

    from detcore.engine.settings import resolve_pipelines

    cfg = resolve_pipelines(load_config(args.config, args.overrides))
    dataset_cfg = (cfg.get("train_dataloader") or {}).get("dataset")
    if not isinstance(dataset_cfg, dict):
        raise ConfigError(f"{args.config}: no [train_dataloader.dataset] table to browse")
    written = browse_dataset(dataset_cfg, args.out_dir, args.num)
    print(f"wrote {len(written)} image(s) to {args.out_dir}")
    return 0


def browse_dataset(dataset_cfg: dict, out_dir: Path, num: int) -> list[Path]:
    """Build the dataset of ``dataset_cfg``, run its pipeline on the first ``num`` images, save drawings."""
    from detcore.data.visualize import save_sample
    from detcore.registry import build

    dataset = build("datasets", dataset_cfg)
    written = []
    for i in range(min(num, len(dataset))):
        item = dataset[i]
        views = item if isinstance(item, list) else [item]
        for k, sample in enumerate(views):
            stem = Path(str(sample.meta.file_name or f"image{i}")).stem
            suffix = f"_view{k}" if len(views) > 1 else ""
            written.append(save_sample(sample, Path(out_dir) / f"{i:04d}_{stem}{suffix}.png", dataset.classes))
    return written
