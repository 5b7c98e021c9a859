"""Problem 2 of issue 17: every config table validated before anything runs, key path and file named."""

from __future__ import annotations

import pytest
from bad_input_helpers import one_paragraph

CFG_MODEL = """
[model]
type = "CfgDetector"
bbox_head = { type = "CfgHead", num_classes = 3 }
train_cfg = { assigner = { type = "MaxIoUAssigner" }, allowed_border = -1, pos_weight = -1 }
test_cfg = { score_thr = 0.05, nms = { type = "nms", iou_threshold = 0.5 }, max_per_img = 100 }
"""


@pytest.mark.parametrize("override, names", [
    (["+max_epoch=2"], ["'max_epoch'", "(top level)", "Did you mean 'runner.max_epochs'"]),
    (["+train_dataloader.batchsize=4"], ["'train_dataloader.batchsize'", "Did you mean 'batch_size'"]),
    (["+checkpoint.intervall=2"], ["'checkpoint.intervall'", "Did you mean 'interval'"]),
    (["+log.intreval=2"], ["'log.intreval'", "Did you mean 'interval'"]),
    (["runner.max_epochs=\"two\""], ["runner.max_epochs", "must be an integer, got a string ('two')"]),
    (["train_dataloader.batch_size=0"], ["train_dataloader.batch_size", "at least 1, got 0"]),
    (["+train_dataloader.num_workers=-1"], ["train_dataloader.num_workers", "at least 0"]),
    (["optimizer.lr=0"], ["optimizer.lr", "must be positive"]),
    (["+deterministic=1"], ["deterministic", "true or false"]),
    (['+model.num_classes="three"'], ["model.num_classes", "must be an integer, got a string"]),
    (["+train_dataloader.on_bad_image=ignore"], ["train_dataloader.on_bad_image", "'error', 'skip'"]),
    (["+runner.max_iters=100"], ["runner.max_iters", "does not apply to runner.type = 'EpochBasedRunner'"]),
    (["runner={type = \"IterBasedRunner\", max_iters = 4, max_epochs = 1}"], ["runner.max_epochs", "does not apply"]),
])
def test_bad_keys_and_values_stop_before_anything_runs(toy_config, tmp_path, detcore, override, names):
    work = tmp_path / "work"
    result = detcore("train", toy_config, "--work-dir", work, "--set", *override)
    assert result.code == 2
    message = one_paragraph(result.err, "train")
    for name in names:
        assert name in message
    assert not work.exists()  # nothing built, nothing written


def test_the_file_that_set_a_key_is_named(toy_config, tmp_path, detcore):
    child = tmp_path / "child.toml"
    child.write_text('_base_ = "toy.toml"\n[checkpoint]\ninteval = 3\n')
    result = detcore("train", child, "--work-dir", tmp_path / "w")
    message = one_paragraph(result.err, "train")
    assert result.code == 2 and f"'checkpoint.inteval' (set in {child})" in message


def test_num_classes_must_match_the_dataset(toy_config, tmp_path, detcore):
    result = detcore("train", toy_config, "--work-dir", tmp_path / "w", "--set", "+model.num_classes=5")
    message = one_paragraph(result.err, "train")
    assert result.code == 2
    assert "model.num_classes" in message and "is 5" in message and "3 classes (square, bar, dot)" in message
    assert not list((tmp_path / "w").glob("*.pth"))


def test_train_cfg_and_test_cfg_keys_come_from_the_components(toy_config, tmp_path, detcore):
    config = tmp_path / "cfg.toml"
    config.write_text(toy_config.read_text().replace('[model]\ntype = "ToyDetector"\n', CFG_MODEL))
    good = detcore("config", "show", config)
    assert good.code == 0
    for table, bad, close in (("train_cfg", "pos_weigth", "pos_weight"), ("test_cfg", "score_thresh", "score_thr")):
        result = detcore("train", config, "--work-dir", tmp_path / table, "--set", f"+model.{table}.{bad}=1")
        message = one_paragraph(result.err, "train")
        assert result.code == 2 and f"'model.{table}.{bad}'" in message and f"Did you mean '{close}'" in message
        assert "CfgHead" in message  # the head's declaration is what decided


def test_validation_helpers_directly(toys):
    from detcore.engine.validation import check_model_cfg_keys, num_classes_entries
    from detcore.errors import ConfigError

    model = {"type": "CfgDetector", "bbox_head": {"type": "CfgHead"}, "train_cfg": {"debug": False}}
    check_model_cfg_keys(model)
    with pytest.raises(ConfigError, match="model.test_cfg.nms_pr"):
        check_model_cfg_keys({**model, "test_cfg": {"nms_pr": 1000}})
    # a component that declares nothing is not checked (heads opt in)
    check_model_cfg_keys({"type": "ToyDetector", "train_cfg": {"anything": 1}})
    # proposal heads are class-agnostic: their num_classes is not the dataset's
    # and semantic heads count stuff classes too (HTC: COCO-stuff's 183)
    nested = {"rpn_head": {"type": "RPNHead", "num_classes": 1}, "roi_head": {
        "bbox_head": [{"num_classes": 3}], "semantic_head": {"type": "FusedSemanticHead", "num_classes": 183}}}
    assert num_classes_entries(nested) == [("model.roi_head.bbox_head[0].num_classes", 3)]


def test_shipped_configs_pass_validation():
    from detcore.config import load_config, shipped_configs
    from detcore.engine.validation import validate_config

    names = [entry.name for entry in shipped_configs() if not entry.is_base]
    for name in names:
        validate_config(load_config(name))


@pytest.mark.parametrize("config, override, close", [
    ("faster_rcnn_r18_fpn_shapes", "+model.train_cfg.rcnn.pos_weigth=1", "pos_weight"),
    ("faster_rcnn_r18_fpn_shapes", "+model.test_cfg.rpn.nms_thr=0.7", "nms"),
    ("faster_rcnn_r18_fpn_shapes", "+model.train_cfg.rpn_proposals={}", "rpn_proposal"),
    ("cascade_rcnn_r18_fpn_shapes", "+model.train_cfg.rcnn.1.samplr={}", "sampler"),
    ("fcos_r18_fpn_shapes", "+model.test_cfg.centerness_fusio=1", "centerness_fusion"),
    ("retinanet_r18_fpn_shapes", "+model.train_cfg.alowed_border=0", "allowed_border"),
])
def test_shipped_heads_declare_their_cfg_keys(config, override, close):
    from detcore.config import load_config, shipped_configs
    from detcore.engine.validation import validate_config
    from detcore.errors import ConfigError

    if config not in {entry.name for entry in shipped_configs()}:
        pytest.skip(f"the family shipping {config} is not installed")
    with pytest.raises(ConfigError) as info:
        validate_config(load_config(config, [override]))
    message = str(info.value)
    assert "(set by --set)" in message and f"'{close}'" in message


def test_runner_built_in_python_checks_its_tables_too(tmp_path):
    from toy_components import toy_runner

    from detcore.errors import ConfigError

    for settings, name in (({"checkpoint": {"intervall": 1}}, "checkpoint.intervall"),
                           ({"log": {"interval": 0}}, "log.interval"),
                           ({"runner": {"type": "EpochBasedRunner", "max_iters": 3}}, "runner.max_iters")):
        with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
            toy_runner(tmp_path / name, **settings)


def test_a_value_the_component_rejects_names_the_component(toy_config, tmp_path, detcore):
    result = detcore("train", toy_config, "--work-dir", tmp_path / "w", "--set", "+model.width=-3")
    message = one_paragraph(result.err, "train")
    assert result.code == 2 and "detectors:ToyDetector" in message and "width = -3" in message
    assert "negative dimension" in message
