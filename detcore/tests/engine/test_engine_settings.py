"""Runner settings: each config key declared once; aliases, unknown keys and the loop table."""

from __future__ import annotations

import pytest

from detcore.engine import LoopSettings, RunnerSettings
from detcore.errors import ConfigError
from toy_components import toy_runner


def test_settings_from_config_pick_known_keys_and_resolve_aliases():
    cfg = {
        "model": {"type": "ToyDetector"},
        "fp16": {"enable": True},
        "load_from": "",
        "train_pipeline": [{"type": "PackDetInputs"}],
        "train_dataloader": {"batch_size": 2, "dataset": {"type": "ToyDataset", "pipeline": "train_pipeline"}},
        "some_user_key": 3,
    }
    settings = RunnerSettings.from_config(cfg)
    assert settings.amp == {"enable": True} and settings.load_from is None
    assert settings.train_dataloader["dataset"]["pipeline"] == [{"type": "PackDetInputs"}]
    assert cfg["train_dataloader"]["dataset"]["pipeline"] == "train_pipeline"  # the config is not modified
    assert not hasattr(settings, "some_user_key")


def test_unknown_runner_keyword_names_the_known_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown runner setting\(s\) \['max_epoch'\]; known: .*custom_hooks"):
        toy_runner(tmp_path, max_epoch=3)


def test_loop_table():
    assert LoopSettings.from_table(None) == LoopSettings(by_epoch=True, max_epochs=12)
    assert LoopSettings.from_table({"type": "IterBasedRunner", "max_iters": 5}).max_iters == 5
    with pytest.raises(ConfigError, match="needs runner.max_iters"):
        LoopSettings.from_table({"type": "IterBasedRunner"})
    with pytest.raises(ConfigError, match="unknown keys"):
        LoopSettings.from_table({"type": "EpochBasedRunner", "epochs": 2})
    with pytest.raises(ConfigError, match="must be 'EpochBasedRunner' or 'IterBasedRunner'"):
        LoopSettings.from_table({"type": "Forever"})


def test_optimizer_config_keys_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="optimizer_config has unknown keys"):
        toy_runner(tmp_path, optimizer_config={"grad_clipping": {"max_norm": 1}})
    with pytest.raises(ConfigError, match="grad_clip must be a table with max_norm"):
        toy_runner(tmp_path, optimizer_config={"grad_clip": {"norm_type": 2}})
