"""``pretrained = "torchvision://NAME"``: ImageNet weights through torchvision's weights API from a pre-filled
hub cache of seeded weights (nothing downloads); offline without the file, the error names file and folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from det_common.backbones import VGG, ResNet, ResNeXt
from det_common.backbones.pretrained import cached_weights_file
from detcore.registry import build


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache; downloads disabled."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setenv("DETCORE_OFFLINE", "1")
    return tmp_path / "hub" / "checkpoints"


def _place(name: str, state: dict) -> Path:
    path = cached_weights_file(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def _assert_loaded(ours: torch.nn.Module, theirs: dict) -> None:
    mine = ours.state_dict()
    shared = [k for k in mine if k in theirs]
    assert len(shared) == len(mine)  # every backbone tensor came from the file
    for key in shared:
        torch.testing.assert_close(mine[key], theirs[key], rtol=0, atol=0)


def test_resnet_by_name_from_the_cache(hub):
    torch.manual_seed(1)
    reference = torchvision.models.resnet18().state_dict()
    path = _place("resnet18", reference)
    assert path.parent == hub and path.name == Path(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url).name
    backbone = build("backbones", {"type": "ResNet", "depth": 18, "pretrained": "torchvision://resnet18"})
    assert isinstance(backbone, ResNet)
    _assert_loaded(backbone, reference)
    assert backbone.load_report.missing_keys == [] and sorted(backbone.load_report.unexpected_keys) == ["fc.bias",
                                                                                                       "fc.weight"]


def test_resnext_and_vgg_by_name(hub):
    torch.manual_seed(2)
    reference = torchvision.models.resnext50_32x4d().state_dict()
    _place("resnext50_32x4d", reference)
    _assert_loaded(ResNeXt(depth=50, groups=32, base_width=4, pretrained="torchvision://resnext50_32x4d"), reference)
    # VGG: the features of a seeded VGG-11 in torchvision's layout (the classifier is never used by detectors)
    torch.manual_seed(3)
    features = {k: v for k, v in VGG(depth=11).state_dict().items() if k.startswith("features.")}
    _place("vgg11", features)
    _assert_loaded(VGG(depth=11, pretrained="torchvision://vgg11"), features)


def test_offline_without_the_file_names_it_and_where(hub):
    with pytest.raises(FileNotFoundError) as info:
        ResNet(depth=50, pretrained="torchvision://resnet50")
    message = str(info.value)
    expected = Path(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url).name
    assert expected in message and str(hub / expected) in message and "DETCORE_OFFLINE" in message


def test_unknown_name_and_scheme(hub):
    with pytest.raises(ValueError, match="no model 'resnet5'.*resnet50"):
        ResNet(depth=50, pretrained="torchvision://resnet5")
    with pytest.raises(ValueError, match="only torchvision://"):
        ResNet(depth=50, pretrained="open-mmlab://resnet50_caffe")
