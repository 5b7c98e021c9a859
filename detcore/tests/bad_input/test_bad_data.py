"""Problems 3 and 4 of issue 17: bad images inside loader workers, and reproducible resume with the
shipped loader settings (one persistent worker)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from bad_input_helpers import one_paragraph
from PIL import Image

from detcore.checkpoint import load_checkpoint_file
from detcore.data.shapes import make_shapes

# The loader settings the shipped shapes configs use (fcos_r18_fpn_shapes, retinanet_r18_fpn_shapes):
# batch_size = 8, num_workers = 1, persistent_workers = true, shuffle = true.
SHAPES_CONFIG = """
seed = 0
train_pipeline = [
    { type = "LoadImageFromFile" },
    { type = "LoadAnnotations", with_bbox = true },
    { type = "RandomFlip", prob = 0.5 },
    { type = "Normalize", mean = [0.0, 0.0, 0.0], std = [255.0, 255.0, 255.0] },
    { type = "PackDetInputs" },
]
test_pipeline = [
    { type = "LoadImageFromFile" },
    { type = "Normalize", mean = [0.0, 0.0, 0.0], std = [255.0, 255.0, 255.0] },
    { type = "PackDetInputs" },
]
[model]
type = "ToyDetector"
[train_dataloader]
batch_size = 8
num_workers = 1
persistent_workers = true
shuffle = true
[train_dataloader.dataset]
type = "CocoDataset"
data_root = "DATA"
ann_file = "annotations/instances_train.json"
img_prefix = "train/"
pipeline = "train_pipeline"
[test_dataloader]
batch_size = 4
num_workers = 1
[test_dataloader.dataset]
type = "CocoDataset"
data_root = "DATA"
ann_file = "annotations/instances_val.json"
img_prefix = "val/"
pipeline = "test_pipeline"
test_mode = true
[evaluation]
metric = ["bbox"]
[optimizer]
type = "SGD"
lr = 0.01
momentum = 0.9
[runner]
type = "EpochBasedRunner"
max_epochs = 2
[log]
interval = 1
progress_bar = false
"""


@pytest.fixture
def shapes_config(tmp_path, toys):
    data = tmp_path / "shapes"
    make_shapes(data, num_train=16, num_val=4, size=40, seed=0)
    config = tmp_path / "shapes_toy.toml"
    config.write_text(SHAPES_CONFIG.replace("DATA", data.as_posix()))
    return config, data


def test_corrupt_image_in_a_worker_is_one_paragraph(shapes_config, tmp_path, detcore):
    config, data = shapes_config
    corrupt = sorted((data / "train").iterdir())[3]
    corrupt.write_bytes(b"not a png")
    work = tmp_path / "work"
    result = detcore("train", config, "--work-dir", work)
    assert result.code == 2
    message = one_paragraph(result.err, "train")
    assert str(corrupt) in message and "corrupt or not an image" in message
    assert "on_bad_image" in message and "DataLoader worker" not in result.err
    assert "corrupt or not an image" in next(work.glob("*.log")).read_text()  # the log says why the run stopped


def test_missing_image_in_test_is_the_same_paragraph(shapes_config, tmp_path, detcore):
    config, data = shapes_config
    assert detcore("train", config, "--work-dir", tmp_path / "work", "--set", "runner.max_epochs=1").code == 0
    missing = sorted((data / "val").iterdir())[1]
    missing.unlink()
    result = detcore("test", config, tmp_path / "work" / "latest.pth", "--work-dir", tmp_path / "work")
    assert result.code == 2 and f"image file {missing} does not exist" in one_paragraph(result.err, "test")


def test_on_bad_image_skip_counts_what_it_skipped(shapes_config, tmp_path, detcore):
    config, data = shapes_config
    images = sorted((data / "train").iterdir())
    images[2].write_bytes(b"\x89PNG broken")
    images[5].unlink()
    Image.new("RGB", (30, 40)).save(images[7])  # the annotation says 40x40: a mismatched size is bad too
    work = tmp_path / "work"
    result = detcore("train", config, "--work-dir", work, "--set", "+train_dataloader.on_bad_image=skip")
    assert result.code == 0, result.err
    log = next(work.glob("*.log")).read_text()
    assert log.count("skipped an image") == 6  # three files, two epochs
    assert "6 training image(s) could not be read and were skipped" in log
    assert str(images[5]) in log and "is 30x40 pixels" in log
    assert load_checkpoint_file(work / "latest.pth")["meta"]["epoch"] == 2


def test_annotation_size_must_match_the_image(shapes_config, tmp_path, detcore):
    config, data = shapes_config
    annotations = data / "annotations" / "instances_train.json"
    coco = json.loads(annotations.read_text())
    coco["images"][0]["width"] = 80
    annotations.write_text(json.dumps(coco))
    result = detcore("train", config, "--work-dir", tmp_path / "work", "--set", "train_dataloader.num_workers=0")
    message = one_paragraph(result.err, "train")
    assert result.code == 2 and coco["images"][0]["file_name"] in message and "says 80x40" in message


def weights(path):
    return load_checkpoint_file(path)["state_dict"]


def test_resume_is_bit_identical_with_the_shipped_loader_settings(shapes_config, tmp_path, detcore):
    config, _ = shapes_config
    straight, split = tmp_path / "straight", tmp_path / "split"
    flags = ("--seed", "0", "--deterministic")
    assert detcore("train", config, "--work-dir", straight, *flags).code == 0
    assert detcore("train", config, "--work-dir", split, *flags, "--set", "runner.max_epochs=1").code == 0
    assert detcore("train", config, "--work-dir", split, *flags, "--resume").code == 0
    a, b = weights(straight / "epoch_2.pth"), weights(split / "epoch_2.pth")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], v) for k, v in weights(split / "epoch_1.pth").items())


class RandomDraws(torch.utils.data.Dataset):
    """Each item is what the process's numpy / torch RNG draws (stands in for random augmentation)."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        from detcore.structures import DetSample, ImageMeta, Instances

        value = float(np.random.rand()) + float(torch.rand(()))
        meta = ImageMeta(ori_shape=(4, 4), img_shape=(4, 4), pad_shape=(4, 4), image_id=index)
        return DetSample(image=torch.full((3, 4, 4), value), meta=meta, gt=Instances((4, 4)))

    def get_data_info(self, index: int):
        return {"width": 4, "height": 4}


@pytest.mark.parametrize("persistent", [False, True])
def test_workers_draw_new_augmentations_every_epoch(persistent):
    from detcore.data.loader import build_dataloader, worker_seed

    def epoch_values(loader, epoch):
        loader.batch_sampler.set_epoch(epoch)
        return [float(b.images[i, 0, 0, 0]) for b in loader for i in range(len(b))]

    loader = build_dataloader(RandomDraws(), 2, num_workers=1, seed=3, shuffle=False, persistent_workers=persistent)
    first, second = epoch_values(loader, 0), epoch_values(loader, 1)
    assert first != second  # no replay of epoch 0's augmentations
    again = build_dataloader(RandomDraws(), 2, num_workers=1, seed=3, shuffle=False, persistent_workers=persistent)
    assert epoch_values(again, 1) == second  # epoch 1 alone (a resumed run) draws the same
    assert len({worker_seed(3, r, e, w) for r in range(2) for e in range(2) for w in range(2)}) == 8


def test_resume_is_bit_identical_with_the_shipped_fcos_shapes_config(tmp_path, detcore):
    from detcore.config import shipped_configs

    if "fcos_r18_fpn_shapes" not in {entry.name for entry in shipped_configs()}:
        pytest.skip("det-anchor-free (fcos_r18_fpn_shapes) is not installed")
    data = tmp_path / "shapes"
    make_shapes(data, num_train=16, num_val=4, size=64, seed=0)
    roots = [f"{split}_dataloader.dataset.data_root={data.as_posix()}" for split in ("train", "val", "test")]
    common = ["--seed", "0", "--deterministic", "--set", *roots,
              "train_pipeline.2.scale=[64, 64]", "lr_config.warmup_iters=2", "log.interval=1",
              "evaluation.interval=10", "+log.progress_bar=false"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    # the shipped loader settings: batch_size = 8, num_workers = 1, persistent_workers = true
    assert detcore("train", "fcos_r18_fpn_shapes", "--work-dir", straight, *common, "runner.max_epochs=2").code == 0
    assert detcore("train", "fcos_r18_fpn_shapes", "--work-dir", split, *common, "runner.max_epochs=1").code == 0
    assert detcore("train", "fcos_r18_fpn_shapes", "--work-dir", split, "--resume", *common,
                   "runner.max_epochs=2").code == 0
    a, b = weights(straight / "epoch_2.pth"), weights(split / "epoch_2.pth")
    assert len(a) > 100 and all(torch.equal(a[k], b[k]) for k in a)
