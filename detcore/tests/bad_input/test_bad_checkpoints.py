"""Problems 1, 6 and 7 of issue 17: weights that do not fit, unsafe or damaged files, partial saves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bad_input_helpers import one_paragraph
from PIL import Image

from detcore.checkpoint import load_checkpoint_file, remove_stale_temporaries, save_checkpoint
from detcore.errors import CheckpointError


def misshaped_copy(path, tmp_path):
    """The checkpoint with a 5-class head instead of 3 (another dataset's model)."""
    checkpoint = load_checkpoint_file(path)
    state = checkpoint["state_dict"]
    state["cls.weight"] = torch.zeros(5, state["cls.weight"].shape[1])
    state["cls.bias"] = torch.zeros(5)
    state["extra.weight"] = torch.zeros(1)
    del state["reg.bias"]
    out = tmp_path / "other_head.pth"
    save_checkpoint(out, checkpoint)
    return out


def test_test_and_infer_refuse_weights_that_do_not_fit(weights, toy_config, tmp_path, detcore):
    bad = misshaped_copy(weights, tmp_path)
    result = detcore("test", toy_config, bad, "--work-dir", tmp_path / "t")
    assert result.code == 2 and result.out == ""  # no metrics from a half-random model
    message = one_paragraph(result.err, "test")
    assert str(bad) in message
    assert "1 missing in the checkpoint (reg.bias)" in message
    assert "1 unexpected (extra.weight)" in message
    assert "2 with another shape" in message and "cls.weight (5, 8) vs model (3, 8)" in message
    assert "load_from" in message  # what to do for fine-tuning

    image = tmp_path / "im.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    result = detcore("infer", toy_config, bad, image, "--out-dir", tmp_path / "vis")
    assert result.code == 2 and "cls.weight (5, 8) vs model (3, 8)" in one_paragraph(result.err, "infer")


def test_init_detector_and_resume_are_strict(weights, toy_config, tmp_path, detcore):
    from detcore.apis import init_detector

    bad = misshaped_copy(weights, tmp_path)
    with pytest.raises(CheckpointError, match="does not fit the model"):
        init_detector(str(toy_config), bad)
    model = init_detector(str(toy_config), weights)
    assert model.classes == ["square", "bar", "dot"]

    work = weights.parent
    before = sorted(p.name for p in work.iterdir())
    result = detcore("train", toy_config, "--work-dir", work, "--resume", bad, "--set", "runner.max_epochs=2")
    assert result.code == 2 and "Resuming needs every weight" in one_paragraph(result.err, "train")
    assert sorted(p.name for p in work.iterdir() if p.suffix == ".pth") == [n for n in before if n.endswith(".pth")]
    log = max(work.glob("*.log"), key=lambda p: p.stat().st_mtime).read_text()
    assert "does not fit the model" in log  # the failed run's log says why


def test_load_from_skips_misshaped_keys_and_says_which(weights, toy_config, tmp_path, detcore):
    bad = misshaped_copy(weights, tmp_path)
    work = tmp_path / "finetune"
    assert detcore("train", toy_config, "--work-dir", work, "--load-from", bad).code == 0
    log = next(work.glob("*.log")).read_text()
    assert "WARNING" in log and "2 with another shape, skipped (cls.weight (5, 8) vs model (3, 8)" in log


def test_numpy_metadata_loads_without_disabling_safety(tmp_path):
    # MMDetection checkpoints carry numpy scalars and arrays in their meta
    path = tmp_path / "mmdet_style.pth"
    torch.save({"state_dict": {"w": torch.ones(2)},
                "meta": {"epoch": np.int64(12), "lr": np.float64(0.02), "hist": np.arange(3),
                         "dtype": np.dtype("float32"), "CLASSES": ("a", "b")}}, path)
    meta = load_checkpoint_file(path)["meta"]
    assert meta["epoch"] == 12 and meta["hist"].tolist() == [0, 1, 2] and meta["dtype"] == np.float32


class Payload:
    """An arbitrary class: unpickling it would run code from the file."""


def test_unsafe_and_truncated_files_are_told_apart(tmp_path):
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"state_dict": {}, "hook": Payload()}, unsafe)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_file(unsafe)
    message = str(info.value)
    assert "Payload" in message and str(unsafe) in message
    advice = message.replace(str(unsafe), "")
    assert "weights_only" not in advice and "truncated" not in advice  # never: turn the check off

    truncated = tmp_path / "truncated.pth"
    save_checkpoint(tmp_path / "good.pth", {"state_dict": {"w": torch.ones(100)}})
    truncated.write_bytes((tmp_path / "good.pth").read_bytes()[:200])
    with pytest.raises(CheckpointError, match="truncated, damaged"):
        load_checkpoint_file(truncated)


def test_stale_temporary_files_are_removed_at_the_next_run(toy_config, tmp_path, detcore):
    work = tmp_path / "work"
    work.mkdir()
    stale = [work / ".epoch_1.pth.k3j2x9.tmp", work / ".latest.pth.tmp"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    keep = work / "notes.tmp"
    keep.write_text("not ours")
    assert detcore("train", toy_config, "--work-dir", work).code == 0
    assert not any(p.exists() for p in stale) and keep.exists()
    log = next(work.glob("*.log")).read_text()
    assert ".epoch_1.pth.k3j2x9.tmp" in log
    assert remove_stale_temporaries(tmp_path / "absent") == []


def test_crash_during_save_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "epoch_1.pth"
    save_checkpoint(path, {"state_dict": {"w": torch.ones(1)}})

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"state_dict": {"w": torch.zeros(1)}})
    monkeypatch.undo()
    assert load_checkpoint_file(path)["state_dict"]["w"].item() == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["epoch_1.pth"]
