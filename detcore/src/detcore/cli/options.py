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


# Measured with the benchmarked detectors (benchmarks/bench_user_path.py; see the README's speed section).
BF16_AGREEMENT = (
    "bf16 keeps most fp32 detections (same label, box IoU >= 0.9, score within 0.02) but not all: "
    "measure it on your model before relying on it"
)


def add_inference_options(parser: argparse.ArgumentParser) -> None:
    """``--precision`` and ``--no-fast``: how ``test`` and ``infer`` run the network."""
    parser.add_argument(
        "--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
        help="autocast precision of the network (post-processing stays fp32): bf16 on CPUs with AVX-512 BF16 / "
        f"AMX or CUDA, fp16 on CUDA. {BF16_AGREEMENT}",
    )
    parser.add_argument(
        "--no-fast", dest="fast", action="store_false",
        help="run the model as built, without folding BatchNorms into convolutions and channels-last "
        "(the fast path gives the same detections up to float rounding)",
    )
