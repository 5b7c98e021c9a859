"""Reading the runner's JSON-lines logs: loss/metric curves and training-speed statistics (`003` §2.3.1)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from detcore.errors import DataError


@dataclass
class TrainLog:
    """The ``train`` and ``val`` records of one ``*.log.json`` file."""

    path: Path
    train: list[dict[str, Any]]
    val: list[dict[str, Any]]


def load_json_log(path: str | os.PathLike[str]) -> TrainLog:
    """Parse a JSON-lines log; a malformed line raises DataError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"log file {path} does not exist")
    train, val = [], []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"log file {path} line {number} is not JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise DataError(f"log file {path} line {number} is not a JSON object")
            if record.get("mode") == "train":
                train.append(record)
            elif record.get("mode") == "val":
                val.append(record)
    return TrainLog(path, train, val)


def curve(log: TrainLog, key: str) -> tuple[list[float], list[float], str]:
    """(x, y, x-label) of ``key``: training values against the global iteration, else evaluation results."""
    points = [(r["global_iter"], r[key]) for r in log.train if r.get(key) is not None]
    if points:
        return [p[0] for p in points], [p[1] for p in points], "iteration"
    by_epoch = any(r.get("epoch") for r in log.val)
    x_key = "epoch" if by_epoch else "iter"
    points = [(r[x_key], r[key]) for r in log.val if r.get(key) is not None]
    if points:
        return [p[0] for p in points], [p[1] for p in points], x_key
    keys = sorted({k for r in log.train + log.val for k in r} - {"mode", "epoch", "iter", "global_iter"})
    raise DataError(f"log file {log.path} has no values for {key!r}; it has: {', '.join(keys) or 'nothing'}")


def plot_curves(
    logs: Sequence[str | os.PathLike[str]],
    keys: Sequence[str],
    out_file: str | os.PathLike[str],
    legend: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Plot every key of every log into one figure and save it (PNG, PDF, ... by extension)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loaded = [load_json_log(p) for p in logs]
    labels = list(legend) if legend else [
        f"{Path(log.path).name} {key}" if len(loaded) > 1 else key for log in loaded for key in keys
    ]
    if len(labels) != len(loaded) * len(keys):
        raise DataError(f"--legend needs {len(loaded) * len(keys)} names (one per log and key), got {len(labels)}")
    fig, ax = plt.subplots(figsize=(8, 5))
    x_label = "iteration"
    for i, log in enumerate(loaded):
        for j, key in enumerate(keys):
            xs, ys, x_label = curve(log, key)
            ax.plot(xs, ys, label=labels[i * len(keys) + j], marker="o" if len(xs) < 30 else None)
    ax.set_xlabel(x_label)
    ax.legend()
    if title:
        ax.set_title(title)
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return out_file


def train_time_stats(path: str | os.PathLike[str], include_outliers: bool = False) -> dict[str, float]:
    """Per-epoch mean iteration time: slowest/fastest epoch, std over epochs, overall mean.

    The first record of each epoch (warm-up, data-loader start) is left out unless ``include_outliers``.
    """
    log = load_json_log(path)
    per_epoch: dict[int, list[float]] = {}
    for record in log.train:
        if "time" in record:
            per_epoch.setdefault(int(record["epoch"]), []).append(float(record["time"]))
    if not per_epoch:
        raise DataError(f"log file {path} has no training records with 'time'")
    means = {}
    for epoch, times in per_epoch.items():
        used = times if include_outliers or len(times) == 1 else times[1:]
        means[epoch] = sum(used) / len(used)
    slowest = max(means, key=means.get)
    fastest = min(means, key=means.get)
    values = list(means.values())
    average = sum(values) / len(values)
    std = math.sqrt(sum((v - average) ** 2 for v in values) / len(values))
    return {
        "slowest_epoch": slowest,
        "slowest_time": means[slowest],
        "fastest_epoch": fastest,
        "fastest_time": means[fastest],
        "std_over_epochs": std,
        "average_iter_time": average,
    }
