"""``detcore publish-model``: training state stripped, sha256 prefix appended (`003` §2.3.3)."""

from __future__ import annotations

import hashlib

import torch

from detcore.cli.main import main
from detcore.tools.publish import published_checkpoint


def _training_checkpoint():
    layer = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    layer(torch.ones(1, 3)).sum().backward()
    opt.step()
    return {
        "state_dict": {f"module.{k}": v for k, v in layer.state_dict().items()},
        "meta": {"epoch": 3, "classes": ["a", "b"], "data_position": 7, "world_size": 1},
        "optimizer": opt.state_dict(),
        "scheduler": {"last": 1},
        "rng": {"torch": torch.get_rng_state()},
        "hooks": {"CheckpointHook": {}},
    }, layer


def test_publish_strips_state_and_appends_sha(tmp_path, capsys):
    checkpoint, layer = _training_checkpoint()
    src = tmp_path / "latest.pth"
    torch.save(checkpoint, src)
    assert main(["publish-model", str(src), str(tmp_path / "model_20261203.pth")]) == 0
    written = sorted(tmp_path.glob("model_20261203-*.pth"))
    assert len(written) == 1 and not (tmp_path / "model_20261203.pth").exists()
    out = written[0]
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    assert out.name == f"model_20261203-{sha[:8]}.pth"
    assert str(out) in capsys.readouterr().out
    loaded = torch.load(out, weights_only=True)
    assert set(loaded) == {"state_dict", "meta"}
    assert loaded["meta"] == {"epoch": 3, "classes": ["a", "b"]}
    assert set(loaded["state_dict"]) == {"weight", "bias"}
    torch.testing.assert_close(loaded["state_dict"]["weight"], layer.weight.detach())


def test_publish_bad_file_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "notes.pth"
    torch.save({"optimizer": {}}, bad)
    assert main(["publish-model", str(bad), str(tmp_path / "out.pth")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "state_dict" in err


def test_published_checkpoint_accepts_a_bare_state_dict():
    state = {"w": torch.ones(2)}
    assert published_checkpoint(state)["state_dict"]["w"].sum() == 2
