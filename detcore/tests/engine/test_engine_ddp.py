"""DistributedDataParallel on CPU (gloo) under torchrun equals one process with the same total batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from detcore.config import load_config
from detcore.engine import Runner, load_checkpoint

TOYS = Path(__file__).with_name("toy_components.py")

CONFIG = """
seed = 0
deterministic = true

[model]
type = "ToyDetector"
dropout = 0.0

[train_dataloader]
batch_size = {batch_size}
shuffle = false
aspect_ratio_grouping = false
[train_dataloader.dataset]
type = "ToyDataset"
num_images = 8

[val_dataloader]
batch_size = 2
shuffle = false
aspect_ratio_grouping = false
[val_dataloader.dataset]
type = "ToyDataset"
num_images = 6

[evaluation]
interval = 1
metric = ["bbox"]

[optimizer]
type = "SGD"
lr = 0.05
momentum = 0.9

[runner]
type = "EpochBasedRunner"
max_epochs = 2

[log]
interval = 1
"""

SCRIPT = """
import sys
from detcore.config import load_config
from detcore.engine import Runner
from detcore.engine.dist import destroy_distributed

cfg = load_config(sys.argv[1])
runner = Runner.from_config(cfg, work_dir=sys.argv[2], launcher=sys.argv[3])
runner.train()
runner.close()
destroy_distributed()
"""


def val_records(work_dir: Path) -> list[dict]:
    logs = list(work_dir.glob("*.log.json"))
    assert len(logs) == 1, "exactly one process (rank 0) writes the JSON log"
    return [r for r in map(json.loads, logs[0].read_text().splitlines()) if r["mode"] == "val"]


def test_ddp_two_processes_match_one_process(tmp_path, fake_dist):
    root = fake_dist(
        "detcore-toys",
        entry_points={
            "detcore.detectors": {"ToyDetector": "detcore_toys:ToyDetector"},
            "detcore.datasets": {"ToyDataset": "detcore_toys:ToyDataset"},
        },
        files={"detcore_toys.py": TOYS.read_text()},
    )
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    single_cfg = tmp_path / "single.toml"
    single_cfg.write_text(CONFIG.format(batch_size=4))
    ddp_cfg = tmp_path / "ddp.toml"
    ddp_cfg.write_text(CONFIG.format(batch_size=2))

    single = Runner.from_config(load_config(single_cfg), work_dir=tmp_path / "single")
    single.train()
    single.close()
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(script), str(ddp_cfg), str(tmp_path / "ddp"), "torchrun"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]

    a = load_checkpoint(tmp_path / "single" / "latest.pth")
    b = load_checkpoint(tmp_path / "ddp" / "latest.pth")
    assert a["meta"]["iter"] == b["meta"]["iter"] == 4 and b["meta"]["world_size"] == 2
    initial = load_checkpoint(tmp_path / "single" / "epoch_1.pth")["state_dict"]
    for key in a["state_dict"]:
        torch.testing.assert_close(b["state_dict"][key], a["state_dict"][key], rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(initial[k], a["state_dict"][k]) for k in initial)  # training moved the weights
    # every rank evaluated its shard; results gathered (duplicates from padding removed) on rank 0
    single_val, ddp_val = val_records(tmp_path / "single"), val_records(tmp_path / "ddp")
    assert len(ddp_val) == 2
    for x, y in zip(single_val, ddp_val):
        assert x["bbox_mAP"] == pytest.approx(y["bbox_mAP"], abs=1e-6)
        assert x["bbox_mAP_50"] == pytest.approx(y["bbox_mAP_50"], abs=1e-6)
