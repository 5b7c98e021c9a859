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


# Measured on trained shapes models (README, "Inference speed").
BF16_AGREEMENT = (
    "Measured: bf16 kept 98%% (GFL) and 96%% (HTC) of the fp32 detections of trained models (same label, box "
    "IoU >= 0.9, score within 0.02) with the same mAP within 0.002, but only 16-81%% on random-weight R-50 "
    "models whose scores are near ties; check it on your model"
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
