"""The runner's channels_last option: NHWC weights and images, same training result, portable checkpoints."""

from __future__ import annotations

import torch

from detcore.engine import load_checkpoint
from detcore.structures import collate
from toy_components import ToyDataset, ToyDetector, toy_runner


def test_channels_last_trains_like_the_default_layout(tmp_path):
    plain = toy_runner(tmp_path / "plain")
    plain.train()
    plain.close()

    nhwc = toy_runner(tmp_path / "nhwc", channels_last=True)
    assert nhwc.module.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not plain.module.conv.weight.is_contiguous(memory_format=torch.channels_last)
    layouts = []
    loss = nhwc.module.loss

    def recording_loss(batch):
        layouts.append(batch.images.is_contiguous(memory_format=torch.channels_last))
        return loss(batch)

    nhwc.module.loss = recording_loss
    nhwc.train()
    nhwc.close()
    assert len(layouts) == 8 and all(layouts)

    # same seed and data: the layouts only change float rounding
    a, b = plain.module.state_dict(), nhwc.module.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)
    assert any(not torch.equal(v, ToyDetector().state_dict()[k]) for k, v in b.items())  # it did train

    batch = collate([ToyDataset(2)[i] for i in range(2)])
    plain.module.eval()
    nhwc.module.eval()
    for mine, ref in zip(nhwc.predict(batch), plain.predict(batch)):
        torch.testing.assert_close(mine.boxes, ref.boxes, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(mine.scores, ref.scores, rtol=1e-4, atol=1e-5)

    # a checkpoint written in NHWC loads into a model in the default layout
    fresh = ToyDetector()
    fresh.load_state_dict(load_checkpoint(tmp_path / "nhwc" / "latest.pth")["state_dict"])
    torch.testing.assert_close(fresh.conv.weight, b["conv.weight"])
