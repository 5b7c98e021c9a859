"""Datasets read tiny synthetic files in their official layouts (WIDER FACE, Cityscapes via the converter, LVIS
v0.5 / v1 with the official metric, DeepFashion); malformed files are errors naming the file and the entry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from detcore.cli.main import main
from detcore.config import load_config
from detcore.data.datasets.deepfashion import DEEPFASHION_CLASSES
from detcore.data.layouts import make_cityscapes, make_lvis, make_wider_face
from detcore.errors import DataError
from detcore.registry import build
from detcore.structures import ImageMeta, Instances

LOAD = [{"type": "LoadImageFromFile"}, {"type": "LoadAnnotations", "with_bbox": True, "with_mask": True},
        {"type": "PackDetInputs"}]


def _dataset_from_config(name: str, loader: str, data_root: Path, **changes):
    dataset = dict(load_config(name)[loader]["dataset"])
    while dataset["type"] in ("RepeatDataset", "ClassBalancedDataset"):
        dataset = dict(dataset["dataset"])
    dataset.update({"data_root": str(data_root), "pipeline": LOAD, **changes})
    return build("datasets", dataset)


# -- WIDER FACE ----------------------------------------------------------------------------------------
def test_wider_face_voc_layout(tmp_path):
    root = make_wider_face(tmp_path)
    dataset = _dataset_from_config("wider_face", "train_dataloader", root,
                                   pipeline=[LOAD[0], {"type": "LoadAnnotations"}, {"type": "PackDetInputs"}])
    assert dataset.classes == ["face"] and len(dataset) == 4
    info = dataset.get_data_info(0)
    assert info["file_name"] == "0--Parade/0_Parade_train_0.jpg" and Path(info["filename"]).is_file()
    sample = dataset[0]
    assert sample.image.shape[-2:] == (96, 96) and (sample.gt.labels == 0).all() and len(sample.gt) >= 2


def test_wider_face_malformed_xml_names_file_and_object(tmp_path):
    root = make_wider_face(tmp_path)
    xml = root / "WIDER_train" / "Annotations" / "0_Parade_train_0.xml"
    xml.write_text(xml.read_text().replace("<folder>0--Parade</folder>", "").replace("<name>face</name>",
                                                                                         "<name>hand</name>", 1))
    with pytest.raises(DataError) as info:
        _dataset_from_config("wider_face", "train_dataloader", root)
    message = str(info.value)
    assert "0_Parade_train_0.xml has no <folder>" in message and "object 0: class 'hand'" in message


# -- Cityscapes ------------------------------------------------------------------------------------------
def test_cityscapes_convert_and_read(tmp_path, capsys):
    root = make_cityscapes(tmp_path)
    assert main(["convert-dataset", "cityscapes", str(root), "--splits", "train", "val"]) == 0
    assert "instancesonly_filtered_gtFine_train.json: 3 images" in capsys.readouterr().out
    data = json.loads((root / "annotations" / "instancesonly_filtered_gtFine_train.json").read_text())
    # every instance id (label * 1000 + k) and crowd region (bare label id) of an evaluated class is one object
    expected = 0
    for img in data["images"]:
        stem = img["file_name"].removesuffix("_leftImg8bit.png")
        ids = np.asarray(Image.open(root / "gtFine" / "train" / f"{stem}_gtFine_instanceIds.png"))
        values = [v for v in np.unique(ids) if v > 0]
        expected += len(values)
        for ann in (a for a in data["annotations"] if a["image_id"] == img["id"]):
            value = ann["category_id"] * 1000 if not ann["iscrowd"] else ann["category_id"]
            candidates = [v for v in values if (v // 1000 if v >= 1000 else v) == ann["category_id"]
                          and (v < 1000) == bool(ann["iscrowd"])]
            decoded = mask_utils.decode(ann["segmentation"]).astype(bool)
            assert any(np.array_equal(decoded, ids == v) for v in candidates), value
    assert len(data["annotations"]) == expected
    assert sum(a["iscrowd"] for a in data["annotations"]) == 3  # the last object of each multi-object image
    assert {c["name"] for c in data["categories"]} == {"person", "rider", "car", "truck", "bus", "train",
                                                       "motorcycle", "bicycle"}

    dataset = _dataset_from_config("cityscapes_instance", "train_dataloader", root)
    assert len(dataset.classes) == 8 and len(dataset) == 3
    sample = dataset[0]
    ann = dataset.get_ann_info(0)
    assert len(sample.gt) == len(ann["bboxes"]) and len(ann["bboxes_ignore"]) == 1
    assert sample.gt.masks.shape == (len(sample.gt), 96, 96)


def test_cityscapes_bad_files_are_named(tmp_path):
    root = make_cityscapes(tmp_path, splits={"train": 1})
    gt = next((root / "gtFine" / "train").rglob("*_gtFine_instanceIds.png"))
    ids = np.asarray(Image.open(gt)).copy()
    ids[0, 0] = 65000
    Image.fromarray(ids).save(gt)
    with pytest.raises(DataError, match=rf"{gt.name}: pixel value 65000 names label id 65"):
        main_convert(root)
    gt.unlink()
    with pytest.raises(DataError, match=rf"{gt.name} \(the instances of .*leftImg8bit.png\) does not exist"):
        main_convert(root)


def main_convert(root):
    from detcore.tools.convert_cityscapes import convert_cityscapes

    return convert_cityscapes(root, root / "annotations", ["train"])


# -- LVIS ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["v1", "v0.5"])
def test_lvis_datasets_and_official_metric(tmp_path, version):
    root = make_lvis(tmp_path, version)
    tag = version.replace(".", "_")
    config = f"lvis_{version}_instance"
    dataset = _dataset_from_config(config, "val_dataloader", root, img_prefix="val2017/" if version == "v0.5" else "",
                                   ann_file=f"annotations/lvis_{tag}_val.json")
    info = dataset.get_data_info(0)
    assert Path(info["filename"]).is_file() and info["file_name"].endswith(f"{info['img_id']:012d}.jpg")
    assert dataset[0].gt.masks is not None

    pytest.importorskip("lvis")
    from detcore.evaluation.lvis_metric import LVISMetric

    metric = LVISMetric(metric="bbox", dataset=dataset)
    gt_by_image = {}
    for i in range(len(dataset)):
        rec = dataset.get_data_info(i)
        gt_by_image[rec["img_id"]] = rec["ann"]
    frequencies = {c["id"]: c["frequency"] for c in json.loads(Path(dataset.ann_file).read_text())["categories"]}
    rare_label = [i for i, cid in enumerate(dataset.cat_ids) if frequencies[cid] == "r"][0]
    for image_id, ann in gt_by_image.items():
        keep = ann["labels"] != rare_label  # perfect detections, except that the rare class is never found
        meta = ImageMeta((96, 96), (96, 96), (96, 96), image_id=image_id)
        metric.process(type("B", (), {"metas": [meta]})(), [Instances(
            None, boxes=torch.as_tensor(ann["bboxes"][keep]), scores=torch.full((int(keep.sum()),), 0.9),
            labels=torch.as_tensor(ann["labels"][keep]))])
    out = metric.compute()
    assert out["bbox_APf"] == pytest.approx(1.0) and out["bbox_APc"] == pytest.approx(1.0)
    assert out["bbox_APr"] == pytest.approx(0.0)
    assert out["bbox_AP"] == pytest.approx(2 / 3, abs=1e-6)  # mean over the three categories


def test_lvis_image_without_file_is_named(tmp_path):
    root = make_lvis(tmp_path, "v1")
    path = root / "annotations" / "lvis_v1_val.json"
    data = json.loads(path.read_text())
    del data["images"][1]["coco_url"]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=rf"image {data['images'][1]['id']} has neither 'file_name' nor a 'coco_url'"):
        _dataset_from_config("lvis_v1_instance", "val_dataloader", root, ann_file="annotations/lvis_v1_val.json")


# -- DeepFashion -----------------------------------------------------------------------------------------
def test_deepfashion_config_reads_coco_format(shapes_dir, tmp_path):
    data = json.loads((shapes_dir / "annotations" / "instances_train.json").read_text())
    data["categories"] = [{"id": i + 1, "name": name} for i, name in enumerate(DEEPFASHION_CLASSES)]
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "DeepFashion_segmentation_query.json").write_text(json.dumps(data))
    (tmp_path / "Img").symlink_to(shapes_dir / "train")
    dataset = _dataset_from_config("deepfashion", "train_dataloader", tmp_path)
    assert dataset.classes == list(DEEPFASHION_CLASSES) and len(dataset) == len(data["images"])
    assert set(dataset[0].gt.labels.tolist()) <= {0, 1, 2} and dataset[0].gt.masks is not None
    data["categories"] = data["categories"][:-1]
    (tmp_path / "annotations" / "DeepFashion_segmentation_query.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"DeepFashion_segmentation_query.json: classes \['face'\]"):
        _dataset_from_config("deepfashion", "train_dataloader", tmp_path)
