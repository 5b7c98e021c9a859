"""VOCDataset (XML, difficult -> ignored) and MiddleFormatDataset (the manual's JSON records)."""

from __future__ import annotations

import json

import pytest

from detcore.data.datasets.middle import MiddleFormatDataset
from detcore.data.datasets.voc import VOCDataset
from detcore.data.transforms.formatting import PackDetInputs
from detcore.data.transforms.loading import LoadAnnotations, LoadImageFromFile
from detcore.errors import DataError

from .conftest import write_image

PIPELINE = [LoadImageFromFile(), LoadAnnotations(), PackDetInputs()]


def voc_xml(objects: list[tuple[str, int, list[int]]], size: tuple[int, int] | None = (60, 40)) -> str:
    size_xml = f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>" if size else ""
    objs = "".join(
        f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for n, d, b in objects
    )
    return f"<annotation><filename>x.jpg</filename>{size_xml}{objs}</annotation>"


@pytest.fixture
def voc_root(tmp_path):
    root = tmp_path / "VOC2007"
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "Annotations" / "000001.xml").write_text(
        voc_xml([("dog", 0, [5, 6, 30, 20]), ("person", 1, [1, 1, 10, 10]), ("cat", 0, [10, 10, 50, 35])]))
    (root / "Annotations" / "000002.xml").write_text(voc_xml([("car", 0, [2, 2, 20, 30])], size=None))
    write_image(root / "JPEGImages" / "000001.jpg", 60, 40)
    write_image(root / "JPEGImages" / "000002.jpg", 30, 45)
    (root / "ImageSets" / "Main" / "train.txt").write_text("000001\n000002\n")
    return tmp_path


def test_voc_boxes_labels_difficult(voc_root):
    ds = VOCDataset("VOC2007/ImageSets/Main/train.txt", data_root=voc_root, img_prefix="VOC2007", pipeline=PIPELINE)
    assert len(ds.classes) == 20 and ds.cat_ids == list(range(20))
    sample = ds[0]
    assert sample.gt.boxes.tolist() == [[5.0, 6.0, 30.0, 20.0], [10.0, 10.0, 50.0, 35.0]]
    assert [ds.classes[i] for i in sample.gt.labels.tolist()] == ["dog", "cat"]
    assert sample.ignored.boxes.tolist() == [[1.0, 1.0, 10.0, 10.0]]
    assert ds.classes[int(sample.ignored.labels[0])] == "person"
    info = ds.get_data_info(1)  # no <size>: read from the image header
    assert (info["width"], info["height"]) == (30, 45)


def test_voc_subset_and_unknown_names(voc_root):
    ds = VOCDataset("VOC2007/ImageSets/Main/train.txt", data_root=voc_root, img_prefix="VOC2007",
                    classes=["cat", "dog"])
    assert ds.get_data_info(0)["ann"]["labels"].tolist() == [1, 0]
    assert len(ds) == 1  # image 000002 has only a car
    (voc_root / "VOC2007" / "Annotations" / "000002.xml").write_text(
        voc_xml([("unicorn", 0, [1, 1, 5, 5]), ("car", 0, [0, 0, 99, 5])]))
    with pytest.raises(DataError) as info:
        VOCDataset("VOC2007/ImageSets/Main/train.txt", data_root=voc_root, img_prefix="VOC2007")
    assert "image 000002 (000002.xml) object 0: class 'unicorn'" in str(info.value)
    assert "image 000002 (000002.xml) object 1: box [0.0, 0.0, 99.0, 5.0] extends outside" in str(info.value)


def test_voc_broken_xml_is_named(voc_root):
    (voc_root / "VOC2007" / "Annotations" / "000001.xml").write_text("<annotation><object>")
    with pytest.raises(DataError, match="image 000001: .*000001.xml is not valid XML"):
        VOCDataset("VOC2007/ImageSets/Main/train.txt", data_root=voc_root, img_prefix="VOC2007")


def middle_records():
    return [
        {"filename": "a.png", "width": 40, "height": 30,
         "ann": {"bboxes": [[1, 2, 11, 12], [5, 5, 25, 20]], "labels": [0, 1],
                 "bboxes_ignore": [[0, 0, 4, 4]], "labels_ignore": [1]}},
        {"filename": "b.png", "width": 30, "height": 30, "ann": {"bboxes": [], "labels": []}},
    ]


def test_middle_format_loads(tmp_path):
    write_image(tmp_path / "a.png", 40, 30)
    (tmp_path / "m.json").write_text(json.dumps(middle_records()))
    ds = MiddleFormatDataset("m.json", data_root=tmp_path, classes=["x", "y"], pipeline=PIPELINE)
    assert len(ds) == 1 and ds.cat_ids == [0, 1]
    sample = ds[0]
    assert sample.gt.boxes.tolist() == [[1.0, 2.0, 11.0, 12.0], [5.0, 5.0, 25.0, 20.0]]
    assert sample.gt.labels.tolist() == [0, 1] and sample.ignored.labels.tolist() == [1]
    (tmp_path / "m2.json").write_text(json.dumps({"classes": ["x", "y"], "images": middle_records()}))
    assert len(MiddleFormatDataset(tmp_path / "m2.json", test_mode=True)) == 2


def test_middle_format_problems(tmp_path):
    records = middle_records()
    records[0]["ann"]["labels"] = [0, 5]
    records[1]["ann"]["bboxes"] = [[0, 0, 0, 10]]
    records[1]["ann"]["labels"] = [0]
    records.append({"filename": "c.png", "width": 10})
    (tmp_path / "m.json").write_text(json.dumps(records))
    with pytest.raises(DataError) as info:
        MiddleFormatDataset(tmp_path / "m.json", classes=["x", "y"])
    text = str(info.value)
    assert "record #0 (a.png) box 1: label 5 is not in 0..1" in text
    assert "record #1 (b.png) box 0: box [0.0, 0.0, 0.0, 10.0] has zero area" in text
    assert "record #2 (c.png): missing key(s) ['height', 'ann']" in text
    with pytest.raises(DataError, match="classes"):
        MiddleFormatDataset(tmp_path / "m.json")
