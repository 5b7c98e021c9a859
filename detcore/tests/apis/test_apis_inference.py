"""init_detector / inference_detector (paths and arrays) / async_inference_detector / show_result."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detcore.apis import LoadImageFromArray, async_inference_detector, inference_detector, init_detector, show_result
from detcore.checkpoint import save_checkpoint
from detcore.errors import CheckpointError, ConfigError, DataError
from detcore.structures import Instances

TOYS = Path(__file__).parents[1] / "engine" / "toy_components.py"
CONFIG = """
test_pipeline = [{ type = "LoadImageFromFile" }, { type = "PackDetInputs" }]
[model]
type = "ToyDetector"
[test_dataloader.dataset]
classes = ["from_config_a", "from_config_b", "from_config_c"]
"""


@pytest.fixture
def toy_setup(tmp_path, fake_dist):
    fake_dist("detcore-toys", entry_points={"detcore.detectors": {"ToyDetector": "detcore_toys:ToyDetector"}},
              files={"detcore_toys.py": TOYS.read_text()})
    config = tmp_path / "toy.toml"
    config.write_text(CONFIG)
    from detcore_toys import ToyDetector

    torch.manual_seed(0)
    weights = ToyDetector().state_dict()
    ckpt = tmp_path / "toy.pth"
    save_checkpoint(ckpt, {"state_dict": weights, "meta": {"classes": ["square", "bar", "dot"]}})
    rng = np.random.default_rng(0)
    images = []
    for i in range(2):
        array = rng.integers(0, 255, size=(40 + 8 * i, 48, 3), dtype=np.uint8)
        path = tmp_path / f"img{i}.png"
        Image.fromarray(array).save(path)
        images.append((path, array))
    return config, ckpt, weights, images


def test_init_detector_loads_weights_and_classes(toy_setup):
    config, ckpt, weights, _ = toy_setup
    model = init_detector(config, ckpt)
    assert not model.training and model.classes == ["square", "bar", "dot"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key])
    assert init_detector(config).classes == ["from_config_a", "from_config_b", "from_config_c"]
    bad = ckpt.with_name("bad.pth")
    save_checkpoint(bad, {"state_dict": {"conv.weight": weights["conv.weight"]}})
    with pytest.raises(CheckpointError, match="bad.pth"):
        init_detector(config, bad)


def test_paths_and_arrays_give_the_same_detections(toy_setup):
    config, ckpt, _, images = toy_setup
    model = init_detector(config, ckpt)
    (path0, array0), (path1, array1) = images
    from_path = inference_detector(model, path0)
    from_array = inference_detector(model, array0)
    assert isinstance(from_path, Instances) and len(from_path) == 1
    assert torch.equal(from_path.boxes, from_array.boxes) and torch.equal(from_path.scores, from_array.scores)
    both = inference_detector(model, [path0, array1])
    assert isinstance(both, list) and len(both) == 2
    alone = inference_detector(model, path1)
    torch.testing.assert_close(both[1].boxes, alone.boxes)
    assert torch.equal(both[0].labels, from_path.labels)
    with pytest.raises(DataError, match="does not exist"):
        inference_detector(model, path0.with_name("missing.png"))
    with pytest.raises(DataError, match=r"\(H, W, 3\)"):
        LoadImageFromArray()({"img_array": np.zeros((4, 4), np.uint8)})


def test_async_inference_overlaps_with_the_event_loop(toy_setup):
    config, ckpt, _, images = toy_setup
    model = init_detector(config, ckpt)
    expected = inference_detector(model, images[0][0])
    original = model.predict

    def slow_predict(batch, rescale=True):
        time.sleep(0.3)  # stands in for a long GPU computation; releases the GIL like torch ops do
        return original(batch, rescale)

    model.predict = slow_predict

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        start = time.perf_counter()
        results = await asyncio.gather(async_inference_detector(model, images[0][0]),
                                       async_inference_detector(model, images[0][1]))
        elapsed = time.perf_counter() - start
        task.cancel()
        return results, ticks, elapsed

    results, ticks, elapsed = asyncio.run(main())
    assert ticks >= 10  # the loop kept running while the model worked
    assert elapsed < 0.55  # the two calls overlapped (two sequential calls take >= 0.6 s)
    for result in results:
        assert torch.equal(result.boxes, expected.boxes)


def test_show_result_draws_boxes_masks_and_respects_threshold(tmp_path):
    image = np.full((40, 50, 3), 20, dtype=np.uint8)
    mask = torch.zeros(2, 40, 50, dtype=torch.bool)
    mask[0, 12:18, 12:18] = True
    inst = Instances((40, 50), boxes=torch.tensor([[10.0, 10.0, 30.0, 25.0], [2.0, 2.0, 5.0, 5.0]]),
                     labels=torch.tensor([1, 0]), scores=torch.tensor([0.9, 0.1]), masks=mask)
    out_file = tmp_path / "vis" / "drawn.png"
    drawn = show_result(image, inst, ["a", "b"], out_file=out_file, score_thr=0.3)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert (drawn[25, 20] != image[25, 20]).any()  # bottom edge of the kept box
    assert (drawn[15, 15] != image[15, 15]).any()  # inside its mask
    assert (drawn[38, 45] == image[38, 45]).all()  # far from everything
    assert (drawn[3, 2] == image[3, 2]).all()  # the low-score box is not drawn
    assert np.array_equal(np.asarray(Image.open(out_file)), drawn)
    nothing = show_result(image, inst, ["a", "b"], score_thr=0.95)
    assert np.array_equal(nothing, image)


def test_tta_pipeline_merges_views(toy_setup, tmp_path):
    config, ckpt, _, images = toy_setup
    tta = tmp_path / "tta.toml"
    tta.write_text(config.read_text().replace(
        'test_pipeline = [{ type = "LoadImageFromFile" }, { type = "PackDetInputs" }]',
        'test_pipeline = [{ type = "LoadImageFromFile" }, { type = "MultiScaleFlipAug", scale = [[48, 40]], flip = true,'
        ' transforms = [{ type = "Resize", keep_ratio = true }, { type = "RandomFlip" }, { type = "PackDetInputs" }] }]',
    ))
    model = init_detector(tta, ckpt)
    merged = inference_detector(model, images[0][0])
    flipped_views = 2
    assert isinstance(merged, Instances) and 1 <= len(merged) <= flipped_views
    plain = inference_detector(init_detector(config, ckpt), images[0][0])
    # the 48x40 view of this 48x40 image is the plain one, so its detection competes in the merge
    assert float(merged.scores.max()) >= float(plain.scores.max()) - 1e-6
    assert bool(((merged.scores >= 0) & (merged.scores <= 1.0)).all())


def test_fast_path_and_precision(toy_setup, monkeypatch):
    """init_detector applies the detector's optimize_for_inference unless fast=False; precision="bf16" runs the
    network under bf16 autocast and still returns float32 fields; fp16 needs CUDA; unknown names are refused."""
    config, ckpt, _, images = toy_setup
    from detcore_toys import ToyDetector

    optimized = []
    monkeypatch.setattr(ToyDetector, "optimize_for_inference", lambda self: optimized.append(self) or self)
    fast = init_detector(config, ckpt)
    assert optimized == [fast]
    plain = init_detector(config, ckpt, fast=False)
    assert optimized == [fast]
    ref = inference_detector(plain, images[0][0])
    assert plain.last_dtype == torch.float32 and torch.equal(inference_detector(fast, images[0][0]).boxes, ref.boxes)

    bf16 = init_detector(config, ckpt, precision="bf16")
    out = inference_detector(bf16, images[0][0])
    assert bf16.last_dtype == torch.bfloat16
    assert out.boxes.dtype == out.scores.dtype == torch.float32
    assert torch.allclose(out.boxes, ref.boxes, atol=0.5) and out.labels.tolist() == ref.labels.tolist()
    with pytest.raises(ConfigError, match="fp16.*CUDA"):
        init_detector(config, ckpt, precision="fp16")
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16, fp16"):
        init_detector(config, ckpt, precision="int8")
