"""Checkpoints: atomic writes, damaged files, keep-last-N, keep-best, latest link, load_from vs resume."""

from __future__ import annotations

import os

import pytest
import torch

from detcore.engine import load_checkpoint, load_weights, save_checkpoint
from detcore.engine.hooks import CheckpointHook
from detcore.errors import CheckpointError
from detcore.interfaces import Metric
from toy_components import ToyDataset, ToyDetector, toy_loader, toy_runner


def test_crash_mid_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "epoch_1.pth"
    save_checkpoint(path, {"state_dict": {"w": torch.ones(3)}, "meta": {"epoch": 1}})
    real_save = torch.save

    def crashing_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial bytes")
        raise OSError("simulated power loss")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, {"state_dict": {"w": torch.zeros(3)}, "meta": {"epoch": 2}})
    monkeypatch.setattr(torch, "save", real_save)
    data = load_checkpoint(path)
    assert data["meta"]["epoch"] == 1 and torch.equal(data["state_dict"]["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1.pth"]  # no temp file left behind


def test_truncated_checkpoint_raises_checkpoint_error_naming_file(tmp_path):
    path = tmp_path / "model.pth"
    save_checkpoint(path, {"state_dict": {"w": torch.randn(1000)}})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)
    runner = toy_runner(tmp_path / "run", resume=str(path))
    with pytest.raises(CheckpointError, match="model.pth"):
        runner.train()
    runner.close()
    with pytest.raises(CheckpointError, match="does not exist"):
        load_weights(ToyDetector(), tmp_path / "missing.pth")


def test_keep_last_n_and_latest_link(tmp_path):
    runner = toy_runner(tmp_path, num_images=4, runner={"type": "EpochBasedRunner", "max_epochs": 4},
                        checkpoint={"interval": 1, "max_keep": 2})
    runner.train()
    runner.close()
    names = sorted(p.name for p in tmp_path.glob("*.pth"))
    assert names == ["epoch_3.pth", "epoch_4.pth", "latest.pth"]
    latest = load_checkpoint(tmp_path / "latest.pth")
    assert latest["meta"]["epoch"] == 4 and latest["meta"]["iter"] == 8
    assert os.path.realpath(tmp_path / "latest.pth") == str((tmp_path / "epoch_4.pth").resolve())
    for key, value in runner.module.state_dict().items():
        assert torch.equal(latest["state_dict"][key], value)


class ScriptedMetric(Metric):
    """Returns the next value of ``scores`` at every evaluation."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = list(scores)
        self.calls = 0

    def reset(self) -> None:
        pass

    def process(self, batch, predictions) -> None:
        pass

    def compute(self) -> dict[str, float]:
        self.calls += 1
        return {"score": self.scores[self.calls - 1]}


@pytest.mark.parametrize("rule,best_epoch,best", [("greater", 2, 0.5), ("less", 4, 0.2)])
def test_keep_best_checkpoint(tmp_path, rule, best_epoch, best):
    dataset = ToyDataset(4)
    runner = toy_runner(
        tmp_path,
        num_images=4,
        runner={"type": "EpochBasedRunner", "max_epochs": 4},
        val_dataloader=toy_loader(dataset, 4, shuffle=False),
        checkpoint={"interval": 2, "save_best": "score", "rule": rule},
        evaluation={"interval": 1, "type": "CocoMetric"},
    )
    runner.val_metric = ScriptedMetric([0.3, 0.5, 0.4, 0.2])
    runner.train()
    runner.close()
    bests = sorted(p.name for p in tmp_path.glob("best_*.pth"))
    assert bests == [f"best_score_epoch_{best_epoch}.pth"]
    assert load_checkpoint(tmp_path / bests[0])["meta"]["epoch"] == best_epoch
    hook = runner.get_hook(CheckpointHook)
    assert hook.best_score == pytest.approx(best)
    assert runner.best_metrics["score"][:2] == (0.5, 2)  # EvalHook records the highest value
    assert sorted(p.name for p in tmp_path.glob("epoch_*.pth")) == ["epoch_2.pth", "epoch_4.pth"]


def test_load_from_loads_weights_only_and_reports_keys(tmp_path):
    first = toy_runner(tmp_path / "a", runner={"type": "EpochBasedRunner", "max_epochs": 1})
    first.train()
    first.close()
    ckpt = tmp_path / "a" / "epoch_1.pth"
    saved = load_checkpoint(ckpt)

    fine_tune = toy_runner(tmp_path / "b", load_from=str(ckpt), seed=5)
    fine_tune.load_initial_state()
    fine_tune.close()
    assert fine_tune.epoch == 0 and fine_tune.iter == 0
    assert fine_tune.optimizer.state_dict()["state"] == {}  # no momentum buffers restored
    for key, value in fine_tune.module.state_dict().items():
        assert torch.equal(value, saved["state_dict"][key])
    assert fine_tune.load_report.missing_keys == [] and fine_tune.load_report.unexpected_keys == []

    bigger = ToyDetector()
    bigger.extra = torch.nn.Linear(2, 2)
    report = load_weights(bigger, ckpt)
    assert report.missing_keys == ["extra.weight", "extra.bias"]
    smaller = ToyDetector(num_classes=5)
    report = load_weights(smaller, ckpt)
    assert [k.split(" ")[0] for k in report.shape_mismatch] == ["cls.weight", "cls.bias"]
    with pytest.raises(CheckpointError, match="does not fit"):
        load_weights(smaller, ckpt, strict=True)


def test_resume_restores_optimizer_schedule_and_position(tmp_path):
    first = toy_runner(tmp_path, runner={"type": "EpochBasedRunner", "max_epochs": 1},
                       lr_config={"policy": "step", "steps": [1], "warmup": "linear", "warmup_iters": 2})
    first.train()
    first.close()
    saved = load_checkpoint(tmp_path / "epoch_1.pth")

    resumed = toy_runner(tmp_path, runner={"type": "EpochBasedRunner", "max_epochs": 2}, resume=True,
                         optimizer={"type": "SGD", "lr": 0.5, "momentum": 0.9})
    resumed.load_initial_state()
    resumed.close()
    assert (resumed.epoch, resumed.iter) == (1, 4)
    state = resumed.optimizer.state_dict()["state"]
    assert torch.equal(state[0]["momentum_buffer"], saved["optimizer"]["state"][0]["momentum_buffer"])
    assert resumed.scheduler.initial_lrs == [0.01]  # the schedule's base lr survives a changed config


def test_resume_needs_optimizer_state(tmp_path):
    save_checkpoint(tmp_path / "weights.pth", {"state_dict": ToyDetector().state_dict(), "meta": {}})
    runner = toy_runner(tmp_path / "run", resume=str(tmp_path / "weights.pth"))
    with pytest.raises(CheckpointError, match="use load_from"):
        runner.load_initial_state()
    runner.close()
