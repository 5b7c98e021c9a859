"""The ``detcore`` command. Built-in subcommands come from ``detcore.cli.commands``;
plugins add more through the ``detcore_add_commands`` hook (loaded only when needed, so
``detcore list-components`` imports no plugin module and not torch)."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from detcore import __version__
from detcore.errors import DetcoreError

# Modules of detcore.cli.commands, each with register(subparsers).
BUILTIN_COMMAND_MODULES = ("components", "environment", "convert", "datasets", "training", "infer", "logs", "tools", "dataset_tools")


def build_parser(with_plugins: bool) -> tuple[argparse.ArgumentParser, set[str]]:
    parser = argparse.ArgumentParser(
        prog="detcore",
        description="detcore: object detection toolbox. Components come from installed "
        "distributions (det-common, det-single-stage, ...) through entry points.",
    )
    parser.add_argument("--version", action="version", version=f"detcore {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in BUILTIN_COMMAND_MODULES:
        importlib.import_module(f"detcore.cli.commands.{module_name}").register(subparsers)
    builtin = set(subparsers.choices)
    if with_plugins:
        from detcore.plugins import get_plugin_manager

        get_plugin_manager().hook.detcore_add_commands(subparsers=subparsers)
    return parser, builtin


def _wants_plugins(argv: Sequence[str]) -> bool:
    """Plugins are needed for top-level help and for commands that are not built in."""
    positional = [a for a in argv if not a.startswith("-")]
    if not positional:
        return True
    parser, builtin = build_parser(with_plugins=False)
    return positional[0] not in builtin


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, _ = build_parser(with_plugins=_wants_plugins(argv))
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0 if not argv else 2
    try:
        return int(handler(args) or 0)
    except DetcoreError as exc:
        print(f"detcore {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `detcore list-components | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"detcore {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
