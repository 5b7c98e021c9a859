"""Resume equivalence (epoch- and iteration-based), the NaN/inf guard and bf16 autocast on CPU."""

from __future__ import annotations

import math

import pytest
import torch

from detcore.engine import NonFiniteLossError, load_checkpoint
from detcore.errors import ConfigError
from toy_components import ToyDetector, toy_runner

SCHEDULE = {"policy": "step", "steps": [1], "gamma": 0.5, "warmup": "linear", "warmup_iters": 3, "warmup_ratio": 0.2}


def weights(runner) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in runner.module.state_dict().items()}


def run(work_dir, **kwargs):
    runner = toy_runner(work_dir, lr_config=SCHEDULE, **kwargs)
    runner.train()
    runner.close()
    return runner


def test_epoch_resume_matches_uninterrupted_training(tmp_path):
    # shuffled loader (global RNG), dropout (RNG in the step), momentum and warmup: all must resume
    full = run(tmp_path / "full", runner={"type": "EpochBasedRunner", "max_epochs": 2})
    run(tmp_path / "split", runner={"type": "EpochBasedRunner", "max_epochs": 1})
    torch.manual_seed(1234)  # disturb the global RNG: resume must restore it
    resumed = run(tmp_path / "split", runner={"type": "EpochBasedRunner", "max_epochs": 2}, resume=True)
    assert resumed.iter == full.iter == 8
    a, b = weights(full), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    changed = run(tmp_path / "other", runner={"type": "EpochBasedRunner", "max_epochs": 2}, seed=1)
    assert not all(torch.equal(a[k], v) for k, v in weights(changed).items())


def test_iteration_resume_mid_epoch_matches(tmp_path):
    loop = {"type": "IterBasedRunner", "max_iters": 7}
    full = toy_runner(tmp_path / "full", runner=loop, lr_config={**SCHEDULE, "steps": [5]}, checkpoint={"interval": 3})
    full.train()
    full.close()
    part = toy_runner(tmp_path / "split", runner={"type": "IterBasedRunner", "max_iters": 3},
                      lr_config={**SCHEDULE, "steps": [5]}, checkpoint={"interval": 3})
    part.train()
    part.close()
    torch.manual_seed(99)
    resumed = toy_runner(tmp_path / "split", runner=loop, lr_config={**SCHEDULE, "steps": [5]},
                         checkpoint={"interval": 3}, resume=str(tmp_path / "split" / "iter_3.pth"))
    resumed.train()
    resumed.close()
    assert (resumed.iter, resumed.data_epoch, resumed.data_position) == (7, 1, 3)
    a, b = weights(full), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


class NaNAfter(ToyDetector):
    """Returns a NaN box loss from the ``bad_call``-th training forward on."""

    def __init__(self, bad_call: int) -> None:
        super().__init__()
        self.bad_call = bad_call
        self.calls = 0

    def loss(self, batch):
        self.calls += 1
        losses = super().loss(batch)
        if self.calls >= self.bad_call:
            losses["loss_bbox"] = losses["loss_bbox"] * float("nan")
        return losses


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path):
    from detcore.engine import Runner
    from toy_components import ToyDataset, toy_loader

    torch.manual_seed(0)
    runner = Runner(
        NaNAfter(bad_call=3),
        tmp_path,
        train_dataloader=toy_loader(ToyDataset(4), 2),
        optimizer={"type": "SGD", "lr": 0.01},
        runner={"type": "EpochBasedRunner", "max_epochs": 3},
        log={"interval": 1},
        seed=0,
    )
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    runner.close()
    message = str(info.value)
    assert "'loss_bbox'" in message and "iteration 3" in message and "epoch 2" in message
    assert "epoch_1.pth" in message
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == ["epoch_1.pth", "latest.pth"]
    good = load_checkpoint(tmp_path / "latest.pth")["state_dict"]
    # the guard fires before backward/step: the weights in memory are still the last good ones
    for key, value in runner.module.state_dict().items():
        assert torch.equal(good[key], value)
        assert bool(torch.isfinite(value).all())


def test_bf16_autocast_step_on_cpu(tmp_path):
    runner = toy_runner(tmp_path, amp={"enable": True}, runner={"type": "IterBasedRunner", "max_iters": 2})
    before = weights(runner)
    runner.train()
    runner.close()
    assert runner.amp.dtype == torch.bfloat16 and runner.grad_scaler is None
    assert runner.module.last_dtype == torch.bfloat16  # the forward ran under autocast
    after = weights(runner)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(after[k].dtype == torch.float32 and bool(torch.isfinite(after[k]).all()) for k in after)
    assert math.isfinite(runner.log_vars["loss"])
    with pytest.raises(ConfigError, match="float16"):
        toy_runner(tmp_path / "fp16", amp={"enable": True, "dtype": "float16"}, device="cpu").close()
