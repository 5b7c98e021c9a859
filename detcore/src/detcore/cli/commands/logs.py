"""``detcore analyze-logs``: plot loss/metric curves and compute training speed from JSON-lines logs."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("analyze-logs", help="plot curves or compute train time from *.log.json files")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    plot = actions.add_parser("plot", help="plot keys (e.g. loss_cls, bbox_mAP) of one or more logs")
    plot.add_argument("logs", nargs="+", type=Path, metavar="LOG")
    plot.add_argument("--keys", nargs="+", default=["loss"], help="values to plot (default: loss)")
    plot.add_argument("--legend", nargs="+", help="one name per log and key")
    plot.add_argument("--title")
    plot.add_argument("--out", type=Path, required=True, help="output image (PNG, PDF, ... by extension)")
    plot.set_defaults(handler=plot_command)

    timing = actions.add_parser("cal-train-time", help="average iteration time per epoch")
    timing.add_argument("logs", nargs="+", type=Path, metavar="LOG")
    timing.add_argument("--include-outliers", action="store_true", help="keep the first record of each epoch")
    timing.set_defaults(handler=train_time_command)


def plot_command(args: argparse.Namespace) -> int:
    from detcore.apis.log_analysis import plot_curves

    out = plot_curves(args.logs, args.keys, args.out, legend=args.legend, title=args.title)
    print(f"saved {out}")
    return 0


def train_time_command(args: argparse.Namespace) -> int:
    from detcore.apis.log_analysis import train_time_stats

    for log in args.logs:
        stats = train_time_stats(log, include_outliers=args.include_outliers)
        print(f"-----Analyze train time of {log}-----")
        print(f"slowest epoch {stats['slowest_epoch']}, average time is {stats['slowest_time']:.4f}")
        print(f"fastest epoch {stats['fastest_epoch']}, average time is {stats['fastest_time']:.4f}")
        print(f"time std over epochs is {stats['std_over_epochs']:.4f}")
        print(f"average iter time: {stats['average_iter_time']:.4f} s/iter")
    return 0
