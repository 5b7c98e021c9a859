"""Options several commands share, so that they read the same way everywhere."""

from __future__ import annotations

import argparse


def add_set_option(parser: argparse.ArgumentParser, dest: str = "set") -> None:
    """``--set KEY=VALUE [KEY=VALUE ...]``, repeatable (``--set a=1 b=2 --set c=3``); values are TOML."""
    parser.add_argument(
        "--set", dest=dest, nargs="+", action="extend", default=[], metavar="KEY=VALUE",
        help="config overrides with TOML values (e.g. optimizer.lr=0.01 'steps=[8, 11]'); several after one "
        "--set or repeat --set; +KEY=VALUE adds a key the config does not have",
    )
