"""TOML configs: _base_ inheritance, merge / replace / delete, overrides, named errors."""

from __future__ import annotations

import json

import pytest

from detcore.config import load_config
from detcore.errors import ConfigError



def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def cfg_dir(tmp_path):
    _write(tmp_path / "_base_/model.toml", """
[model]
type = "RetinaNet"
[model.backbone]
type = "ResNet"
depth = 50
frozen_stages = 1
[model.neck]
type = "FPN"
out_channels = 256
""")
    _write(tmp_path / "_base_/schedule.toml", """
optimizer = {type = "SGD", lr = 0.01}
steps = [8, 11]
""")
    return tmp_path


def test_inheritance_merge_replace_delete(cfg_dir):
    child = _write(cfg_dir / "child.toml", """
_base_ = ["_base_/model.toml", "_base_/schedule.toml"]
steps = [16, 22]
[model.backbone]
depth = 101
_delete_ = ["frozen_stages"]
[model.neck]
_delete_ = true
type = "PAFPN"
in_channels = [1, 2]
""")
    cfg = load_config(child)
    assert cfg["model"]["backbone"] == {"type": "ResNet", "depth": 101}
    assert cfg["model"]["neck"] == {"type": "PAFPN", "in_channels": [1, 2]}
    assert cfg["steps"] == [16, 22]  # lists replace
    assert cfg["optimizer"] == {"type": "SGD", "lr": 0.01}
    assert cfg.origin("model.backbone.depth") == child.resolve()
    assert cfg.origin("optimizer.lr") == (cfg_dir / "_base_/schedule.toml").resolve()


def test_overrides(cfg_dir):
    path = _write(cfg_dir / "c.toml", '_base_ = "_base_/model.toml"\n')
    cfg = load_config(path, ["model.backbone.depth=18", "model.neck.out_channels=64",
                             "+model.neck.extra=\"x\"", "+runner.max_epochs=3"])
    assert cfg["model"]["backbone"]["depth"] == 18
    assert cfg["model"]["neck"] == {"type": "FPN", "out_channels": 64, "extra": "x"}
    assert cfg["runner"] == {"max_epochs": 3}
    with pytest.raises(ConfigError) as err:
        load_config(path, ["model.backbone.detph=18"])
    assert "Unknown config key 'model.backbone.detph'" in str(err.value)
    assert "Did you mean: depth?" in str(err.value)
    assert str(path.resolve()) in str(err.value)


def test_dump_round_trips(cfg_dir):
    cfg = load_config(_write(cfg_dir / "c.toml", '_base_ = ["_base_/model.toml", "_base_/schedule.toml"]\n'
                             '[[pipeline]]\ntype = "Resize"\nscale = [1333, 800]\n'))
    again = _write(cfg_dir / "dumped.toml", cfg.dump())
    assert load_config(again).to_dict() == cfg.to_dict()


def test_malformed_toml_names_the_file(tmp_path):
    bad = _write(tmp_path / "bad.toml", "[model\ntype = 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert f"Malformed TOML in config file {bad}" in str(err.value)
    assert "line 1" in str(err.value)


def test_base_cycle_is_named(tmp_path):
    a = _write(tmp_path / "a.toml", '_base_ = "b.toml"\n')
    _write(tmp_path / "b.toml", '_base_ = "a.toml"\n')
    with pytest.raises(ConfigError) as err:
        load_config(a)
    assert "_base_ cycle" in str(err.value)
    assert "a.toml -> " in str(err.value) and "b.toml -> " in str(err.value)


def test_missing_base_and_bad_delete(tmp_path):
    with pytest.raises(ConfigError, match="_base_ file 'nope.toml' not found"):
        load_config(_write(tmp_path / "x.toml", '_base_ = "nope.toml"\n'))
    _write(tmp_path / "base.toml", "[t]\na = 1\n")
    with pytest.raises(ConfigError, match=r"t._delete_ names 'b'"):
        load_config(_write(tmp_path / "y.toml", '_base_ = "base.toml"\n[t]\n_delete_ = ["b"]\n'))


def test_shipped_config_by_name_and_cli_errors(tmp_path, dist_writer, cli):
    site = dist_writer(tmp_path / "site", "det-cfgs",
                      entry_points={"detcore.configs": {"det_cfgs": "det_cfgs_pkg.configs"}},
                      files={"det_cfgs_pkg/__init__.py": "",
                             "det_cfgs_pkg/configs/_base_/m.toml": "[model]\ntype = 'A'\ndepth = 1\n",
                             "det_cfgs_pkg/configs/my_model.toml": '_base_ = ["m"]\n[model]\ndepth = 2\n'})
    out = cli("config", "show", "my_model", "--json", "--set", "model.depth=3", extra_path=[site])
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"model": {"type": "A", "depth": 3}}
    listed = json.loads(cli("list-configs", "--json", extra_path=[site]).stdout)
    assert [r["name"] for r in listed if r["distribution"] == "det-cfgs"] == ["my_model"]
    # errors: one named paragraph on stderr, exit status 2, no traceback
    out = cli("config", "show", "my_modle", extra_path=[site])
    assert out.returncode == 2
    assert "No config named 'my_modle'" in out.stderr and "Did you mean: my_model?" in out.stderr
    assert "Traceback" not in out.stderr
    out = cli("config", "show", "my_model", "--set", "model.dept=3", extra_path=[site])
    assert out.returncode == 2 and "Unknown config key 'model.dept'" in out.stderr
    assert "Traceback" not in out.stderr
