"""``detcore convert``: checkpoints from other toolboxes to detcore's (MMDetection-style) layout.

Converters are components of kind ``converters`` named ``SOURCE.ARCH`` (e.g.
``torchvision.retinanet_resnet50_fpn``); each is ``convert(state_dict) -> (converted, unplaced)``.
``--from mmdet`` needs no architecture: detcore uses MMDetection's parameter names already,
so it only unwraps the checkpoint and drops wrapper prefixes.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert", help="convert a torchvision or MMDetection checkpoint to detcore's layout"
    )
    p.add_argument("--from", dest="source", required=True, choices=["torchvision", "mmdet"])
    p.add_argument("--arch", help="architecture name for --from torchvision "
                   "(see `detcore list-components --kind converters`)")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.set_defaults(handler=convert_command)


def convert_command(args: argparse.Namespace) -> int:
    from detcore.checkpoint import load_state_dict_file, save_checkpoint
    from detcore.errors import ConfigError
    from detcore.registry import get_component

    state = load_state_dict_file(args.input)
    if args.source == "mmdet":
        converted = {k.removeprefix("module."): v for k, v in state.items()}
        unplaced: list[str] = []
    else:
        if not args.arch:
            raise ConfigError("--from torchvision needs --arch NAME, e.g. retinanet_resnet50_fpn.")
        convert = get_component("converters", f"{args.source}.{args.arch}")
        converted, unplaced = convert(state)
    save_checkpoint(args.output, {"state_dict": converted,
                                  "meta": {"converted_from": f"{args.source}:{args.arch or ''}",
                                           "source_file": str(args.input)}})
    print(f"wrote {args.output}: {len(converted)} tensors")
    if unplaced:
        print(f"{len(unplaced)} keys could not be placed and were dropped:")
        for key in unplaced:
            print(f"  {key}")
        return 1
    return 0
