"""LR schedules (values at given iterations, hand-computed), param-wise groups, LR scaling, clipping."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from detcore.engine import build_lr_scheduler, param_groups, scale_lr
from detcore.engine.optim import build_optimizer
from detcore.errors import ConfigError
from detcore.interfaces import Hook
from toy_components import toy_runner


def lr_at(cfg: dict, epoch: int, it: int, max_epochs: int | None = 4, max_iters: int = 20, base: float = 0.1) -> float:
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=base)
    return build_lr_scheduler(cfg).step(opt, epoch, it, max_epochs, max_iters)[0]


def test_step_schedule_with_linear_warmup():
    cfg = {"policy": "step", "steps": [2, 3], "gamma": 0.1, "warmup": "linear", "warmup_iters": 4, "warmup_ratio": 0.1}
    assert lr_at(cfg, 0, 0) == pytest.approx(0.01)  # 0.1 * (1 - (1 - 0/4) * 0.9)
    assert lr_at(cfg, 0, 2) == pytest.approx(0.055)  # 0.1 * (1 - 0.5 * 0.9)
    assert lr_at(cfg, 0, 4) == pytest.approx(0.1)
    assert lr_at(cfg, 1, 7) == pytest.approx(0.1)
    assert lr_at(cfg, 2, 10) == pytest.approx(0.01)
    assert lr_at(cfg, 3, 15) == pytest.approx(0.001)


def test_constant_warmup_and_periodic_step():
    cfg = {"policy": "step", "steps": 2, "gamma": 0.5, "warmup": "constant", "warmup_iters": 4, "warmup_ratio": 0.25}
    assert lr_at(cfg, 0, 3) == pytest.approx(0.025)
    assert lr_at(cfg, 0, 4) == pytest.approx(0.1)
    assert lr_at(cfg, 5, 30, max_epochs=8) == pytest.approx(0.1 * 0.5**2)


def test_cosine_and_multistep_by_iteration():
    cos = {"policy": "cosine", "min_lr_ratio": 0.1, "by_epoch": False}
    assert lr_at(cos, 0, 0, max_iters=10) == pytest.approx(0.1)
    assert lr_at(cos, 0, 5, max_iters=10) == pytest.approx(0.1 * (0.1 + 0.45))
    assert lr_at(cos, 0, 10, max_iters=10) == pytest.approx(0.01)
    assert lr_at(cos, 0, 2, max_iters=10) == pytest.approx(0.1 * (0.1 + 0.45 * (1 + math.cos(math.pi * 0.2))))
    multi = {"policy": "multistep", "steps": [3, 6], "gamma": 0.5, "by_epoch": False}
    assert [lr_at(multi, 0, i) for i in (2, 3, 5, 6, 9)] == pytest.approx([0.1, 0.05, 0.05, 0.025, 0.025])


def test_bad_schedule_configs_are_named():
    with pytest.raises(ConfigError, match="warmup"):
        build_lr_scheduler({"policy": "step", "steps": [1], "warmup": "exp", "warmup_iters": 3})
    with pytest.raises(ConfigError, match="multistep"):
        build_lr_scheduler({"policy": "multistep", "steps": 3})
    with pytest.raises(ConfigError, match="Unknown config key"):
        build_lr_scheduler({"policy": "cosine", "stepz": 3})


class LrRecorder(Hook):
    priority = 95

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def after_train_iter(self, runner) -> None:
        self.lrs.append(runner.optimizer.param_groups[0]["lr"])


def test_runner_applies_schedule_every_iteration(tmp_path):
    recorder = LrRecorder()
    runner = toy_runner(
        tmp_path,
        num_images=8,
        batch_size=2,
        optimizer={"type": "SGD", "lr": 0.1},
        lr_config={"policy": "step", "steps": [1], "gamma": 0.1, "warmup": "linear", "warmup_iters": 2, "warmup_ratio": 0.5},
        runner={"type": "EpochBasedRunner", "max_epochs": 2},
        custom_hooks=[recorder],
    )
    runner.train()
    runner.close()
    # 4 iterations per epoch: warmup 0.05, 0.075, then 0.1; epoch 2 decays to 0.01
    assert recorder.lrs == pytest.approx([0.05, 0.075, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01])


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Sequential(nn.Linear(4, 2))
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def test_paramwise_groups():
    paramwise = {
        "norm_decay_mult": 0.0,
        "bias_decay_mult": 0.0,
        "bias_lr_mult": 2.0,
        "custom_keys": {"head": {"lr_mult": 0.1, "decay_mult": 0.5}},
    }
    groups = param_groups(Net(), lr=0.1, weight_decay=0.01, paramwise=paramwise)
    lrs = {name: g["lr"] for g in groups for name in g["names"]}
    decays = {name: g["weight_decay"] for g in groups for name in g["names"]}
    expected = {
        "conv.weight": (0.1, 0.01),
        "conv.bias": (0.2, 0.0),
        "bn.weight": (0.1, 0.0),
        "bn.bias": (0.1, 0.0),
        "head.0.weight": (0.1 * 0.1, 0.01 * 0.5),
        "head.0.bias": (0.1 * 0.1, 0.01 * 0.5),
    }
    assert lrs == pytest.approx({k: v[0] for k, v in expected.items()})
    assert decays == pytest.approx({k: v[1] for k, v in expected.items()})
    with pytest.raises(ConfigError, match="unknown keys"):
        param_groups(Net(), 0.1, 0.01, {"norm_decay": 0.0})


def test_optimizer_built_with_groups_and_linear_scaling():
    opt = build_optimizer(
        Net(),
        {"type": "SGD", "lr": 0.02, "momentum": 0.9, "weight_decay": 1e-4, "paramwise": {"norm_decay_mult": 0.0}},
        total_batch_size=4,
        auto_scale_lr={"enable": True, "base_batch_size": 16},
    )
    assert isinstance(opt, torch.optim.SGD)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.005, 0.005])
    decays = sorted(g["weight_decay"] for g in opt.param_groups)
    assert decays == [0.0, pytest.approx(1e-4)]
    assert scale_lr(0.02, 64, 16) == pytest.approx(0.08)
    off = build_optimizer(Net(), {"type": "SGD", "lr": 0.02}, total_batch_size=4, auto_scale_lr={"enable": False})
    assert off.param_groups[0]["lr"] == 0.02


def test_runner_linear_scaling_uses_total_batch(tmp_path):
    runner = toy_runner(
        tmp_path, batch_size=2, optimizer={"type": "SGD", "lr": 0.16}, auto_scale_lr={"enable": True, "base_batch_size": 16}
    )
    runner.close()
    assert runner.optimizer.param_groups[0]["lr"] == pytest.approx(0.02)


def test_gradient_clipping_bounds_the_update(tmp_path):
    runner = toy_runner(
        tmp_path,
        optimizer={"type": "SGD", "lr": 1.0},
        optimizer_config={"grad_clip": {"max_norm": 1e-3}},
        runner={"type": "IterBasedRunner", "max_iters": 1},
    )
    before = [p.detach().clone() for p in runner.module.parameters()]
    runner.train()
    runner.close()
    update = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(runner.module.parameters(), before)))
    assert float(update) == pytest.approx(1e-3, rel=1e-3)
    assert runner.log_vars["grad_norm"] > 1e-3  # the unclipped norm is what gets logged
