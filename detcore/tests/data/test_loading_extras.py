"""Proposals, semantic segmentation maps and photometric distortion through a pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from detcore.data.datasets.coco import CocoDataset
from detcore.data.transforms.formatting import PackDetInputs
from detcore.data.transforms.geometric import RandomFlip, Resize, SegRescale
from detcore.data.transforms.loading import LoadAnnotations, LoadImageFromFile, LoadProposals
from detcore.data.transforms.photometric import PhotoMetricDistortion

from .conftest import ann, write_coco

CATS = [{"id": 1, "name": "a"}]


def test_proposals_are_loaded_resized_and_packed(tmp_path):
    path = write_coco(tmp_path, [{"id": 4, "file_name": "p.png", "width": 40, "height": 20}],
                      [ann(1, 4, 1, [2, 2, 10, 10])], CATS)
    (tmp_path / "props.json").write_text(json.dumps({"4": [[0, 0, 10, 10, 0.9], [20, 5, 40, 20, 0.5]]}))
    ds = CocoDataset(path, img_prefix=tmp_path / "img", proposal_file=tmp_path / "props.json",
                     pipeline=[LoadImageFromFile(), LoadAnnotations(), LoadProposals(num_max_proposals=2),
                               Resize(scale=(80, 40)), PackDetInputs()])
    sample = ds[0]
    assert sample.proposals.boxes.tolist() == [[0.0, 0.0, 20.0, 20.0], [40.0, 10.0, 80.0, 40.0]]
    assert sample.proposals.scores.tolist() == [0.8999999761581421, 0.5]
    assert sample.gt.boxes.tolist() == [[4.0, 4.0, 24.0, 24.0]]


def test_semantic_seg_follows_flip_and_rescale(tmp_path):
    seg = np.zeros((20, 40), dtype=np.uint8)
    seg[:, :10] = 3
    Image.fromarray(seg).save(tmp_path / "seg.png")
    results = {"filename": None, "img_info": {"height": 20, "width": 40}, "seg_prefix": str(tmp_path),
               "ann_info": {"bboxes": np.zeros((0, 4)), "labels": np.zeros(0), "seg_map": "seg.png"}}
    Image.fromarray(np.zeros((20, 40, 3), dtype=np.uint8)).save(tmp_path / "img.png")
    results["filename"] = str(tmp_path / "img.png")
    out = LoadAnnotations(with_seg=True)(LoadImageFromFile()(results))
    out = RandomFlip(prob=1.0)(out)
    out = SegRescale(scale_factor=0.5)(out)
    sample = PackDetInputs()(out)
    got = sample.gt_sem_seg
    assert got.shape == (10, 20) and got.dtype == torch.int64
    assert (got[:, 15:] == 3).all() and (got[:, :15] == 0).all()


def test_photometric_distortion_changes_colours_only(tmp_path):
    np.random.seed(0)
    img = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 16, 16), dtype=np.uint8))
    from torchvision import tv_tensors

    results = {"img": tv_tensors.Image(img)}
    outs = [PhotoMetricDistortion()(results)["img"] for _ in range(8)]
    for out in outs:
        assert out.shape == img.shape and out.dtype == torch.float32
        assert float(out.min()) >= 0 and float(out.max()) <= 255.0 + 1e-3
    assert any((out - img.float()).abs().mean() > 5 for out in outs)


def test_keypoints_are_packed_and_refused_by_geometric_transforms():
    from torchvision import tv_tensors

    from detcore.data.transforms.fields import make_boxes
    from detcore.errors import DataError

    keypoints = torch.tensor([[[2.0, 3.0, 2.0], [5.0, 6.0, 0.0]]])
    results = {"img": tv_tensors.Image(torch.zeros(3, 8, 10, dtype=torch.uint8)), "img_id": 7,
               "gt_bboxes": make_boxes([[1, 1, 6, 7]], (8, 10)), "gt_labels": torch.tensor([0]),
               "gt_keypoints": keypoints, "bbox_fields": ["gt_bboxes"]}
    sample = PackDetInputs()(results)
    assert torch.equal(sample.gt.keypoints, keypoints) and sample.gt.keypoints.dtype == torch.float32
    for transform in (RandomFlip(prob=1.0), Resize(scale=(20, 16))):
        with pytest.raises(DataError, match="image 7: results hold gt_keypoints"):
            transform(results)
