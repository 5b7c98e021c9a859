import torch
import torchvision
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

from det_common.backbones import VGG, ResNeXt, ResNet, ResNetV1d


def _randomize_bn(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=g) + 0.5
            m.bias.data = torch.randn(m.num_features, generator=g) * 0.1
            m.running_mean = torch.randn(m.num_features, generator=g) * 0.1
            m.running_var = torch.rand(m.num_features, generator=g) + 0.5


def _tv_features(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    nodes = {f"layer{i}": f"c{i + 1}" for i in range(1, 5)}
    out = create_feature_extractor(model, nodes)(x)
    return [out[f"c{i}"] for i in range(2, 6)]


def test_resnet50_matches_torchvision(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.resnet50()
    _randomize_bn(tv, 0)
    tv.eval()
    path = tmp_path / "r50.pth"
    torch.save(tv.state_dict(), path)
    ours = ResNet(50, pretrained=str(path))
    assert ours.load_report.missing_keys == [] and sorted(ours.load_report.unexpected_keys) == ["fc.bias", "fc.weight"]
    ours.train()  # norm_eval keeps BN in eval mode, so features stay deterministic
    assert all(not m.training for m in ours.modules() if isinstance(m, nn.BatchNorm2d))
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        got = ours(x)
        expected = _tv_features(tv, x)
    assert ours.out_channels == [256, 512, 1024, 2048]
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_resnext_and_resnet18_match_torchvision():
    torch.manual_seed(1)
    x = torch.randn(1, 3, 64, 64)
    for ours, tv in [
        (ResNeXt(50, groups=32, base_width=4), torchvision.models.resnext50_32x4d()),
        (ResNet(18), torchvision.models.resnet18()),
    ]:
        _randomize_bn(tv, 1)
        result = ours.load_state_dict(tv.state_dict(), strict=False)
        assert result.missing_keys == []
        ours.eval()
        tv.eval()
        with torch.no_grad():
            for a, b in zip(ours(x), _tv_features(tv, x)):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_caffe_style_puts_stride_on_first_conv():
    pytorch_style = ResNet(50, style="pytorch")
    caffe = ResNet(50, style="caffe")
    assert pytorch_style.layer2[0].conv1.stride == (1, 1) and pytorch_style.layer2[0].conv2.stride == (2, 2)
    assert caffe.layer2[0].conv1.stride == (2, 2) and caffe.layer2[0].conv2.stride == (1, 1)
    shapes = [o.shape for o in caffe.eval()(torch.randn(1, 3, 64, 64))]
    assert shapes == [(1, 256, 16, 16), (1, 512, 8, 8), (1, 1024, 4, 4), (1, 2048, 2, 2)]


def test_frozen_stages_and_norm_eval():
    model = ResNet(18, frozen_stages=1, norm_eval=False, out_indices=(1, 3))
    model.train()
    frozen = [model.conv1, model.bn1, model.layer1]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in model.layer2.parameters())
    assert not model.bn1.training and not model.layer1[0].bn1.training and model.layer2[0].bn1.training
    before = model.layer1[0].bn1.running_mean.clone()
    outs = model(torch.randn(2, 3, 32, 32))
    assert len(outs) == 2 and model.out_channels == [128, 512]
    torch.testing.assert_close(model.layer1[0].bn1.running_mean, before)
    sum(o.sum() for o in outs).backward()
    assert model.conv1.weight.grad is None and model.layer2[0].conv1.weight.grad is not None


def test_resnet_v1d_and_dcn_names():
    model = ResNetV1d(depth=50, dcn={"type": "DCN", "deform_groups": 1, "fallback_on_stride": False},
                      stage_with_dcn=(False, True, True, True))
    keys = model.state_dict().keys()
    assert "stem.0.weight" in keys and "stem.7.running_var" in keys
    assert "layer2.0.downsample.1.weight" in keys and isinstance(model.layer2[0].downsample[0], nn.AvgPool2d)
    assert "layer2.0.conv2.conv_offset.weight" in keys and "layer1.0.conv2.conv_offset.weight" not in keys
    assert torch.count_nonzero(model.layer2[0].conv2.conv_offset.weight) == 0
    model.eval()
    shapes = [o.shape[1:] for o in model(torch.randn(1, 3, 64, 64))]
    assert shapes == [(256, 16, 16), (512, 8, 8), (1024, 4, 4), (2048, 2, 2)]


def test_zero_init_residual():
    model = ResNet(50)
    assert torch.count_nonzero(model.layer1[0].bn3.weight) == 0
    assert torch.count_nonzero(ResNet(50, zero_init_residual=False).layer1[0].bn3.weight) > 0


def test_vgg_matches_torchvision_features_and_ssd_variant():
    torch.manual_seed(2)
    tv = nn.Module()  # torchvision's VGG-11-BN feature layers, without the large classifier
    tv.features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["A"], batch_norm=True)
    tv.eval()
    _randomize_bn(tv, 2)
    ours = VGG(11, with_bn=True, out_indices=(4,)).eval()
    result = ours.load_state_dict({k: v for k, v in tv.state_dict().items() if k.startswith("features.")})
    assert not result.missing_keys
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[0], tv.features(x), rtol=1e-5, atol=1e-5)
    ssd = VGG(16, with_last_pool=False, ceil_mode=True, ssd_fc=True, out_feature_indices=(22, 34)).eval()
    assert isinstance(ssd.features[22], nn.ReLU) and ssd.features[33].kernel_size == (1, 1)
    outs = ssd(torch.randn(1, 3, 100, 100))  # ceil_mode pooling: 100 -> 50 -> 25 -> 13, then 7
    assert ssd.out_channels == [512, 1024] and [o.shape[-1] for o in outs] == [13, 7]
