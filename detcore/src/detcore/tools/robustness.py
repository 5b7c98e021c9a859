"""``detcore test-robustness``: a detector's accuracy under the 15 ImageNet-C corruptions at severities 1-5
(Michaelis et al., "Benchmarking Robustness in Object Detection: Autonomous Driving when Winter is Coming", 2019).

P is the test metric (COCO ``bbox_mAP`` by default) on clean images, P_cs under corruption c at severity s.
mPC = mean over corruptions and severities >= 1 of P_cs (mean performance under corruption);
rPC = mPC / P (relative performance under corruption). Each corruption is applied by a ``Corrupt`` step
inserted right after the test pipeline's image-loading step, with a fixed seed so runs repeat.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from detcore.errors import CheckpointError, ConfigError

TRAINING_KEYS = ("train_dataloader", "val_dataloader", "optimizer", "resume", "load_from", "custom_hooks")
METRIC_PREFERENCE = ("bbox_mAP", "mAP", "segm_mAP")


def corrupted_config(cfg: Mapping[str, Any], corruption: str | None, severity: int, seed: int = 0) -> dict[str, Any]:
    """A test-only copy of ``cfg`` whose test pipeline corrupts every image (``corruption`` None or
    ``severity`` 0: clean)."""
    from detcore.engine.settings import resolve_pipelines

    out = resolve_pipelines(cfg)
    for key in TRAINING_KEYS:
        out.pop(key, None)
    dataset = (out.get("test_dataloader") or {}).get("dataset")
    if not isinstance(dataset, dict) or not isinstance(dataset.get("pipeline"), list):
        raise ConfigError("test-robustness needs [test_dataloader.dataset] with a pipeline list")
    evaluation = dict(out.get("evaluation") or {})
    evaluation.pop("interval", None)
    out["evaluation"] = evaluation
    if corruption is None or severity == 0:
        return out
    pipeline = dataset["pipeline"]
    load = next((i for i, step in enumerate(pipeline)
                 if isinstance(step, Mapping) and str(step.get("type", "")).split("::")[-1].startswith("LoadImage")), None)
    if load is None:
        raise ConfigError("test-robustness: the test pipeline has no LoadImageFromFile step to corrupt after")
    pipeline.insert(load + 1, {"type": "Corrupt", "corruption": corruption, "severity": int(severity), "seed": seed})
    return out


def evaluate(cfg: Mapping[str, Any], checkpoint: str | Path, work_dir: str | Path) -> dict[str, float]:
    """The test metrics of ``checkpoint`` under ``cfg`` (a test-only config)."""
    from detcore.engine import Runner, load_weights

    runner = Runner.from_config(dict(cfg), work_dir=work_dir)
    try:
        report = load_weights(runner.module, checkpoint)
        if report.missing_keys:
            raise CheckpointError(f"checkpoint file {checkpoint} does not fit the model: {report.describe()}")
        return dict(runner.test())
    finally:
        runner.close()


@dataclass
class RobustnessReport:
    metric: str
    clean: float
    #: corruption -> severity -> metric value
    corrupted: dict[str, dict[int, float]] = field(default_factory=dict)

    @property
    def per_corruption(self) -> dict[str, float]:
        """Mean over the severities >= 1 of each corruption."""
        return {c: sum(v.values()) / len(v) for c, v in self.corrupted.items() if v}

    @property
    def mpc(self) -> float:
        values = [p for per_sev in self.corrupted.values() for p in per_sev.values()]
        return sum(values) / len(values) if values else float("nan")

    @property
    def rpc(self) -> float:
        return self.mpc / self.clean if self.clean > 0 else float("nan")

    def table(self) -> str:
        severities = sorted({s for v in self.corrupted.values() for s in v})
        lines = [f"{'corruption':<20}" + "".join(f"{'s' + str(s):>8}" for s in severities) + f"{'mean':>8}"]
        for name, per_sev in self.corrupted.items():
            lines.append(f"{name:<20}" + "".join(f"{per_sev.get(s, float('nan')):>8.3f}" for s in severities)
                         + f"{self.per_corruption[name]:>8.3f}")
        lines.append(f"{self.metric}: P (clean) = {self.clean:.4f}   mPC = {self.mpc:.4f}   rPC = {self.rpc:.4f}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "P": self.clean, "mPC": self.mpc, "rPC": self.rpc,
                "per_corruption": self.per_corruption,
                "results": {c: {str(s): p for s, p in v.items()} for c, v in self.corrupted.items()}}


def _pick_metric(metrics: Mapping[str, float], wanted: str | None) -> str:
    if wanted:
        if wanted not in metrics:
            raise ConfigError(f"test-robustness: metric {wanted!r} not among the results {sorted(metrics)}")
        return wanted
    for key in METRIC_PREFERENCE:
        if key in metrics:
            return key
    raise ConfigError(f"test-robustness: none of {METRIC_PREFERENCE} in the results {sorted(metrics)}; pass --metric-key")


def run_robustness(
    cfg: Mapping[str, Any],
    checkpoint: str | Path,
    corruptions: Sequence[str],
    severities: Sequence[int],
    work_dir: str | Path,
    metric_key: str | None = None,
    seed: int = 0,
    out_json: str | Path | None = None,
) -> RobustnessReport:
    """Evaluate clean (always) and every (corruption, severity >= 1); write ``out_json`` when given."""
    from detcore.data.corruptions import BENCHMARK

    unknown = [c for c in corruptions if c not in BENCHMARK]
    if unknown:
        raise ConfigError(f"unknown corruptions {unknown}; the 15 are: {', '.join(BENCHMARK)}")
    bad = [s for s in severities if int(s) not in range(0, 6)]
    if bad:
        raise ConfigError(f"severities must be 0..5 (0 = clean), got {bad}")
    work_dir = Path(work_dir)
    clean_metrics = evaluate(corrupted_config(cfg, None, 0), checkpoint, work_dir / "clean")
    key = _pick_metric(clean_metrics, metric_key)
    report = RobustnessReport(key, float(clean_metrics[key]))
    for corruption in corruptions:
        for severity in sorted({int(s) for s in severities if int(s) > 0}):
            metrics = evaluate(corrupted_config(cfg, corruption, severity, seed), checkpoint,
                               work_dir / f"{corruption}_{severity}")
            report.corrupted.setdefault(corruption, {})[severity] = float(metrics[key])
    if out_json:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(report.to_dict(), indent=1))
    return report


