"""The 15 ImageNet-C corruptions: shapes kept, severities ordered, the closed-form ones exact, ``Corrupt`` seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from detcore.data.corruptions import BENCHMARK, corrupt, corruption_names
from detcore.data.transforms.corrupt import Corrupt


def _image(h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(1)
    img = np.full((h, w, 3), 128, np.uint8)
    img[10:30, 12:40] = (200, 40, 30)
    img[25:45, 35:60] = (20, 160, 220)
    return np.clip(img.astype(int) + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", BENCHMARK)
def test_every_corruption_keeps_the_shape_and_grows_with_severity(name):
    img = _image()
    change = []
    for severity in (1, 5):
        a = corrupt(img, name, severity, np.random.default_rng(0))
        b = corrupt(img, name, severity, np.random.default_rng(0))
        assert a.shape == img.shape and a.dtype == np.uint8
        np.testing.assert_array_equal(a, b)  # the same generator state gives the same picture
        change.append(np.abs(a.astype(float) - img).mean())
    assert change[0] > 0
    if name != "frost":  # frost trades image for ice texture: checked in closed form below
        assert change[0] < change[1], (name, change)


def test_closed_form_corruptions():
    img = _image()
    x = img.astype(np.float64) / 255
    # contrast at severity 3: (x - channel mean) * 0.2 + channel mean
    expected = (x - x.mean(axis=(0, 1))) * 0.2 + x.mean(axis=(0, 1))
    np.testing.assert_allclose(corrupt(img, "contrast", 3) / 255, expected, atol=1 / 255)
    # gaussian noise at severity 2 has sigma 0.12 (of the 0..1 range) on a mid-grey image
    grey = np.full((200, 200, 3), 128, np.uint8)
    noisy = corrupt(grey, "gaussian_noise", 2, np.random.default_rng(0)).astype(np.float64) / 255
    assert noisy.std() == pytest.approx(0.12, rel=0.03)
    # impulse noise at severity 4 sets 17% of the values to 0 or 255
    salted = corrupt(grey, "impulse_noise", 4, np.random.default_rng(0))
    assert np.isin(salted, (0, 255)).mean() == pytest.approx(0.17, abs=0.01)
    # frost: keep * image + add * texture (1, 0.4 at severity 1; 0.6, 0.75 at 5) with the same texture
    dark = (_image() // 4).astype(np.uint8)
    f1 = corrupt(dark, "frost", 1, np.random.default_rng(3)).astype(np.float64) / 255
    f5 = corrupt(dark, "frost", 5, np.random.default_rng(3)).astype(np.float64) / 255
    d = dark.astype(np.float64) / 255
    unclipped = (f1 < 1) & (f5 < 1)
    np.testing.assert_allclose(((f1 - d) / 0.4)[unclipped], ((f5 - 0.6 * d) / 0.75)[unclipped], atol=2 / 255 / 0.4)
    # pixelate at severity 5 keeps blocks of 4 pixels (factor 0.25)
    blocks = corrupt(_image(), "pixelate", 5)
    np.testing.assert_array_equal(blocks[0:4, 0:4], np.broadcast_to(blocks[0, 0], (4, 4, 3)))


def test_groups_and_bad_names():
    assert len(corruption_names("benchmark")) == 15
    assert set(corruption_names("noise")) == {"gaussian_noise", "shot_noise", "impulse_noise"}
    with pytest.raises(ValueError, match="the 15 are"):
        corrupt(_image(), "rain", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(_image(), "fog", 6)
    with pytest.raises(ValueError, match="unknown corruption group"):
        corruption_names("weird")


def test_corrupt_transform_is_seeded_per_image():
    img = torch.from_numpy(_image()).permute(2, 0, 1).contiguous()
    step = Corrupt("shot_noise", severity=3, seed=7)
    a = step({"img": tv_tensors.Image(img), "img_id": 1})["img"]
    b = step({"img": tv_tensors.Image(img), "img_id": 1})["img"]
    c = step({"img": tv_tensors.Image(img), "img_id": 2})["img"]
    assert a.dtype == torch.uint8 and a.shape == img.shape
    assert torch.equal(a, b) and not torch.equal(a, c)
    as_float = step({"img": tv_tensors.Image(img.float()), "img_id": 1})["img"]
    assert as_float.dtype == torch.float32 and torch.equal(as_float.to(torch.uint8), a)
    with pytest.raises(ValueError, match="unknown corruption"):
        Corrupt("rain")
