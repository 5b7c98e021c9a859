"""Image loading: every mode / depth / orientation becomes the right RGB uint8 pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from detcore.data.images import read_image, read_image_size
from detcore.data.transforms.loading import LoadImageFromFile
from detcore.errors import DataError


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = np.arange(12 * 10, dtype=np.uint8).reshape(10, 12)
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    rgb = read_image(tmp_path / "g.png")
    assert rgb.shape == (10, 12, 3) and rgb.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(rgb[:, :, c], gray)


def test_rgba_drops_alpha_keeping_colour(tmp_path):
    rgba = np.zeros((4, 5, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 200, 100, 50, 7
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    rgb = read_image(tmp_path / "a.png")
    assert rgb.shape == (4, 5, 3)
    assert rgb[0, 0].tolist() == [200, 100, 50]


def test_16bit_gray_is_scaled_not_clipped(tmp_path):
    wide = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    Image.fromarray(wide).save(tmp_path / "w.png")
    assert Image.open(tmp_path / "w.png").mode.startswith("I")
    rgb = read_image(tmp_path / "w.png")
    assert rgb[0, :, 0].tolist() == [0, 100, 255]
    assert rgb.dtype == np.uint8


def test_exif_rotation_is_applied(tmp_path):
    stored = np.zeros((20, 40, 3), dtype=np.uint8)  # 40 wide, 20 high as stored
    stored[:, :20] = (255, 0, 0)  # left half red
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise
    image.save(tmp_path / "r.jpg", exif=exif, quality=100)
    rgb = read_image(tmp_path / "r.jpg")
    assert rgb.shape == (40, 20, 3)  # width and height swap
    assert rgb[2, 10, 0] > 200 and rgb[37, 10, 0] < 60  # red half is now on top
    assert read_image_size(tmp_path / "r.jpg") == (20, 40)


def test_load_image_transform_gives_chw_tensor(tmp_path):
    Image.fromarray(np.full((6, 8, 3), 9, dtype=np.uint8)).save(tmp_path / "x.png")
    out = LoadImageFromFile()({"filename": str(tmp_path / "x.png")})
    assert tuple(out["img"].shape) == (3, 6, 8)
    assert out["img_shape"] == out["ori_shape"] == (6, 8)
    assert int(out["img"].sum()) == 9 * 3 * 6 * 8


def test_missing_image_names_file(tmp_path):
    with pytest.raises(DataError, match="nope.jpg"):
        LoadImageFromFile()({"filename": str(tmp_path / "nope.jpg")})


def test_corrupt_jpeg_names_file(tmp_path):
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(tmp_path / "ok.jpg")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "bad.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError, match="bad.jpg"):
        read_image(tmp_path / "bad.jpg")
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="junk.jpg"):
        read_image(tmp_path / "junk.jpg")
