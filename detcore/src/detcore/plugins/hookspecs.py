"""The hooks a ``detcore.plugins`` plugin may implement (pluggy, project name "detcore").

A plugin is a light module (it must not import torch at import time) named by an entry
point in group ``detcore.plugins``; decorate functions with ``detcore.plugins.hookimpl``.
"""

from __future__ import annotations

import argparse
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("detcore")
hookimpl = pluggy.HookimplMarker("detcore")


@hookspec
def detcore_add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add CLI subcommands: ``p = subparsers.add_parser(...); p.set_defaults(handler=fn)``.

    ``fn(args) -> int`` is the exit status.
    """


@hookspec
def detcore_config_dirs() -> list[str]:
    """Folders of TOML configs this plugin contributes (addressable by file stem)."""


@hookspec
def detcore_env_checks() -> list[dict[str, Any]]:
    """Rows for ``detcore env``: ``{"name": ..., "ok": bool, "detail": ...}``."""
