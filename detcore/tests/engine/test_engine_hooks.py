"""Hook timepoints and priority order; the default hooks; custom hooks from config tables; the logs."""

from __future__ import annotations

import json

import pytest

from detcore.engine.hooks import (
    CheckpointHook,
    EvalHook,
    IterTimerHook,
    LoggerHook,
    LrSchedulerHook,
)
from detcore.errors import ConfigError
from detcore.interfaces import HOOK_TIMEPOINTS, Hook
from toy_components import ToyDataset, toy_loader, toy_runner


class Recorder(Hook):
    def __init__(self, name: str, events: list, priority=50) -> None:
        self.name = name
        self.events = events
        self.priority = priority

    def __getattribute__(self, attr):
        if attr in HOOK_TIMEPOINTS:
            return lambda runner: self.events.append((attr, self.name))
        return super().__getattribute__(attr)


def with_val(**kwargs):
    dataset = ToyDataset(2)
    return dict(val_dataloader=toy_loader(dataset, 2, shuffle=False), evaluation={"interval": 1, "metric": ["bbox"]},
                num_images=4, **kwargs)


def test_timepoints_follow_the_training_pipeline(tmp_path):
    events: list = []
    runner = toy_runner(tmp_path, runner={"type": "EpochBasedRunner", "max_epochs": 1},
                        custom_hooks=[Recorder("r", events, priority=60)], **with_val())
    runner.train()
    runner.close()
    assert [e[0] for e in events] == [
        "before_run",
        "before_train_epoch",
        "before_train_iter", "after_train_iter",
        "before_train_iter", "after_train_iter",
        # EvalHook (priority 45) runs validation inside after_train_epoch, before this hook's turn
        "before_val_epoch", "before_val_iter", "after_val_iter", "after_val_epoch",
        "after_train_epoch",
        "after_run",
    ]


def test_hooks_run_in_priority_order_ties_in_registration_order(tmp_path):
    events: list = []
    hooks = [Recorder("late", events, 80), Recorder("first", events, "HIGHEST"), Recorder("tie_a", events, 50),
             Recorder("tie_b", events, 50)]
    runner = toy_runner(tmp_path, runner={"type": "IterBasedRunner", "max_iters": 1}, custom_hooks=hooks)
    runner.train()
    runner.close()
    for timepoint in ("before_run", "before_train_iter", "after_train_iter", "after_run"):
        assert [n for t, n in events if t == timepoint] == ["first", "tie_a", "tie_b", "late"]
    types = [type(h) for h in runner.hooks]
    defaults = [LrSchedulerHook, CheckpointHook, IterTimerHook, LoggerHook]
    assert [t for t in types if t in defaults] == defaults
    priorities = [h.priority for h in runner.hooks]
    assert priorities == sorted(priorities)


def test_default_hooks_include_eval_before_checkpoint(tmp_path):
    runner = toy_runner(tmp_path, **with_val())
    runner.close()
    order = [type(h) for h in runner.hooks]
    assert order.index(EvalHook) < order.index(CheckpointHook)


def test_custom_hooks_from_config_tables(tmp_path):
    runner = toy_runner(tmp_path, custom_hooks=[{"type": "IterTimerHook", "priority": "HIGHEST"}])
    runner.close()
    assert isinstance(runner.hooks[0], IterTimerHook) and runner.hooks[0].priority == 0
    with pytest.raises(ConfigError, match="priority"):
        toy_runner(tmp_path, custom_hooks=[{"type": "IterTimerHook", "priority": "SOMETIMES"}])
    with pytest.raises(ConfigError, match="type"):
        toy_runner(tmp_path, custom_hooks=[{"priority": 3}])


def test_logger_writes_text_and_json_records(tmp_path):
    runner = toy_runner(tmp_path, runner={"type": "EpochBasedRunner", "max_epochs": 2},
                        log={"interval": 1, "progress_bar": False}, **with_val())
    runner.train()
    runner.close()
    json_log = next(tmp_path.glob("*.log.json"))
    records = [json.loads(line) for line in json_log.read_text().splitlines()]
    assert records[0]["mode"] == "meta" and records[0]["seed"] == 0
    train = [r for r in records if r["mode"] == "train"]
    val = [r for r in records if r["mode"] == "val"]
    assert [(r["epoch"], r["iter"], r["global_iter"]) for r in train] == [(1, 1, 1), (1, 2, 2), (2, 1, 3), (2, 2, 4)]
    for record in train:
        assert {"lr", "time", "data_time", "memory", "loss", "loss_cls", "loss_bbox", "acc"} <= set(record)
        assert record["loss"] == pytest.approx(record["loss_cls"] + record["loss_bbox"], rel=1e-5)
    assert [r["epoch"] for r in val] == [1, 2] and "bbox_mAP" in val[0]
    text = next(p for p in tmp_path.glob("*.log") if p.suffix == ".log").read_text()
    assert "Epoch [2][2/2]" in text and "loss_cls" in text and "bbox_mAP" in text


def test_progress_bar_only_when_asked_or_on_a_terminal(tmp_path, capsys):
    runner = toy_runner(tmp_path / "plain", runner={"type": "IterBasedRunner", "max_iters": 2}, log={"interval": 1})
    runner.train()
    runner.close()
    assert "ETA" not in capsys.readouterr().err  # stderr is not a terminal under pytest
    runner = toy_runner(tmp_path / "bar", runner={"type": "IterBasedRunner", "max_iters": 2},
                        log={"interval": 1, "progress_bar": True})
    runner.train()
    runner.close()
    err = capsys.readouterr().err
    assert "] 1/2 ETA" in err and "] 2/2 ETA 0:00:00" in err
