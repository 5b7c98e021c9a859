"""``detcore convert-dataset``: official dataset layouts to the COCO format detcore's datasets read."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("convert-dataset", help="convert an official dataset layout to COCO format")
    kinds = p.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    cs = kinds.add_parser(
        "cityscapes", help="Cityscapes (leftImg8bit/ + gtFine/) -> annotations/instancesonly_filtered_gtFine_*.json",
        description="Reads gtFine/<split>/<city>/*_gtFine_instanceIds.png and writes one COCO file per split with "
        "RLE masks of the 8 evaluated classes with instances (crowd regions as iscrowd = 1).")
    cs.add_argument("root", type=Path, help="the Cityscapes folder holding leftImg8bit/ and gtFine/")
    cs.add_argument("--out-dir", type=Path, help="default: ROOT/annotations")
    cs.add_argument("--splits", nargs="+", default=["train", "val"], help="e.g. train val test")
    cs.set_defaults(handler=convert_cityscapes_command)


def convert_cityscapes_command(args: argparse.Namespace) -> int:
    from detcore.tools.convert_cityscapes import convert_cityscapes

    for path in convert_cityscapes(args.root, args.out_dir or args.root / "annotations", args.splits):
        data = json.loads(path.read_text())
        print(f"wrote {path}: {len(data['images'])} images, {len(data['annotations'])} objects")
    return 0
