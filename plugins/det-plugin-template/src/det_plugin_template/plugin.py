"""pluggy hooks of the template plugin. Must not import torch at import time."""

from __future__ import annotations

import argparse
from pathlib import Path

from detcore.plugins import hookimpl


@hookimpl
def detcore_add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("template-info", help="(det-plugin-template) describe the template backbone")
    p.add_argument("--stages", type=int, default=4)
    p.set_defaults(handler=_template_info)


def _template_info(args: argparse.Namespace) -> int:
    from det_plugin_template.backbone import TinyConvBackbone, count_parameters

    model = TinyConvBackbone(num_stages=args.stages)
    print(f"TinyConvBackbone stages={args.stages} channels={model.out_channels} "
          f"parameters={count_parameters(model)}")
    return 0


@hookimpl
def detcore_env_checks() -> list[dict]:
    configs = Path(__file__).parent / "configs"
    return [{"name": "det-plugin-template configs", "ok": configs.is_dir(), "detail": str(configs)}]
