"""DetectoRS's parts: ConvAWS, SAC, the DetectoRS ResNet (SAC stages, RFP inputs) and the RFP neck."""

import pytest
import torch
import torch.nn.functional as F

from det_common.backbones.detectors_resnet import DetectoRSResNet
from det_common.layers import build_conv_layer
from det_common.layers.sac import ConvAWS2d, SAConv2d
from det_common.necks.fpn import FPN
from det_common.necks.rfp import ASPP, RFP

SMALL = {"depth": 50, "base_channels": 4, "norm_eval": False, "conv_cfg": {"type": "ConvAWS"}}


def test_conv_aws_standardises_each_filter_then_applies_gamma_and_beta():
    torch.manual_seed(0)
    conv = build_conv_layer({"type": "ConvAWS"}, 3, 4, 3, padding=1)
    assert isinstance(conv, ConvAWS2d) and {"weight_gamma", "weight_beta"} <= set(conv.state_dict())
    conv.weight_gamma.fill_(2.0)
    conv.weight_beta.fill_(0.5)
    w = conv.weight
    want_w = 2.0 * (w - w.mean(dim=(1, 2, 3), keepdim=True)) / torch.sqrt(w.flatten(1).var(dim=1) + 1e-5).view(-1, 1, 1, 1) + 0.5
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(conv(x), F.conv2d(x, want_w, conv.bias, padding=1))


def test_conv_aws_loads_a_plain_convolution_as_that_convolution():
    torch.manual_seed(0)
    plain = torch.nn.Conv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        plain.weight.mul_(0.05).add_(0.01)  # ImageNet-like filters: small, not centred
    conv = ConvAWS2d(3, 4, 3, padding=1)
    result = conv.load_state_dict(plain.state_dict())  # strict: gamma and beta are recovered, not missing
    assert result.missing_keys == [] and result.unexpected_keys == []
    torch.testing.assert_close(conv.weight_beta.flatten(), plain.weight.flatten(1).mean(1))
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(conv(x), plain(x), rtol=1e-5, atol=1e-5)
    # a checkpoint that has gamma and beta keeps them
    saved = {k: v.clone() for k, v in conv.state_dict().items()}
    saved["weight_gamma"].fill_(2.0)
    conv.load_state_dict(saved)
    assert torch.equal(conv.weight_gamma, torch.full_like(conv.weight_gamma, 2.0))
    # weight_gamma / weight_beta alone missing without a weight: reported as missing as usual
    partial = {k: v for k, v in saved.items() if k not in ("weight", "weight_gamma")}
    assert set(conv.load_state_dict(partial, strict=False).missing_keys) == {"weight", "weight_gamma"}


def test_detectors_resnet_from_imagenet_resnet_weights_is_that_resnet(tmp_path):
    """MMDetection starts DetectoRS from ``torchvision://resnet50``: with SAC at its initial state (switch 1,
    no offsets or context) and ConvAWS recovering gamma and beta, the backbone is the pretrained ResNet."""
    from det_common.backbones.resnet import ResNet

    torch.manual_seed(0)
    resnet = ResNet(depth=50, base_channels=4)
    with torch.no_grad():
        for name, t in resnet.state_dict().items():
            if name.endswith("running_mean"):
                t.normal_(0.0, 0.1)
            elif name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif name.endswith(("bn1.weight", "bn2.weight", "bn3.weight")):
                t.uniform_(0.5, 1.5)
    torch.save({f"backbone.{k}": v for k, v in resnet.state_dict().items()}, tmp_path / "resnet.pth")
    detectors = DetectoRSResNet(depth=50, base_channels=4, conv_cfg={"type": "ConvAWS"},
                                sac={"type": "SAC", "use_deform": True}, stage_with_sac=(False, True, True, True),
                                pretrained=str(tmp_path / "resnet.pth"))
    missing = detectors.load_report.missing_keys
    assert missing and not any(k.endswith(("weight_gamma", "weight_beta")) for k in missing)
    assert all(k.split(".")[-2] in ("switch", "pre_context", "post_context", "offset_s", "offset_l")
               or k.endswith("weight_diff") for k in missing)
    resnet.eval()
    detectors.eval()
    images = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        for got, want in zip(detectors(images), resnet(images)):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("use_deform", [False, True])
def test_sac_starts_as_the_small_dilation_convolution_and_switches_to_the_large_one(use_deform):
    torch.manual_seed(0)
    sac = build_conv_layer({"type": "SAC", "use_deform": use_deform}, 4, 6, 3, padding=1, bias=False)
    assert isinstance(sac, SAConv2d)
    x = torch.randn(2, 4, 9, 9)
    weight = sac.standardized_weight(sac.weight)
    torch.testing.assert_close(sac(x), F.conv2d(x, weight, padding=1), rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        sac.switch.bias.fill_(0.0)  # switch 0: the 3x-dilated branch only
        sac.weight_diff.fill_(0.01)
    torch.testing.assert_close(sac(x), F.conv2d(x, weight + 0.01, padding=3, dilation=3), rtol=1e-4, atol=1e-5)


def test_detectors_resnet_puts_sac_in_its_stages_and_rfp_inputs_in_first_blocks():
    torch.manual_seed(0)
    plain = DetectoRSResNet(**SMALL, sac={"type": "SAC", "use_deform": True}, stage_with_sac=(False, True, True, True),
                            output_img=True)
    assert not isinstance(plain.layer1[0].conv2, SAConv2d) and isinstance(plain.layer2[1].conv2, SAConv2d)
    images = torch.randn(1, 3, 128, 128)  # SAC's reflect padding needs maps of at least 3 x 3
    outs = plain(images)
    assert outs[0] is images and [o.shape[1] for o in outs[1:]] == [16, 32, 64, 128]
    rfp = DetectoRSResNet(**SMALL, rfp_inplanes=8)
    keys = set(rfp.state_dict())
    assert "layer2.0.rfp_conv.weight" in keys and "layer2.1.rfp_conv.weight" not in keys and "layer1.0.rfp_conv.weight" not in keys
    fed = [torch.randn(1, 8, 32 // 2**i, 32 // 2**i) for i in range(4)]
    rfp.eval()
    # zero-initialised rfp_conv: feeding features back changes nothing until it learns
    for a, b in zip(rfp.rfp_forward(images, fed), rfp(images)):
        torch.testing.assert_close(a, b)
    with torch.no_grad():
        rfp.layer3[0].rfp_conv.bias.fill_(1.0)
    changed = rfp.rfp_forward(images, fed)
    torch.testing.assert_close(changed[1], rfp(images)[1])
    assert not torch.allclose(changed[2], rfp(images)[2])


def test_rfp_is_its_fpn_after_one_step_and_mixes_a_second_pass_by_a_learned_weight():
    torch.manual_seed(0)
    backbone = {"type": "DetectoRS_ResNet", **SMALL, "rfp_inplanes": 8}
    neck = RFP(rfp_steps=2, rfp_backbone=backbone, aspp_out_channels=2, in_channels=[16, 32, 64, 128], out_channels=8,
               num_outs=5)
    fpn = FPN(in_channels=[16, 32, 64, 128], out_channels=8, num_outs=5)
    fpn.load_state_dict({k: v for k, v in neck.state_dict().items() if k.startswith(("lateral_convs", "fpn_convs"))})
    source = DetectoRSResNet(**SMALL, output_img=True).eval()
    neck.eval()
    images = torch.randn(1, 3, 64, 64)
    feats = source(images)
    one_step = RFP(rfp_steps=1, rfp_backbone=backbone, aspp_out_channels=2, in_channels=[16, 32, 64, 128],
                   out_channels=8, num_outs=5)
    one_step.load_state_dict({k: v for k, v in neck.state_dict().items() if not k.startswith("rfp_modules")})
    for a, b in zip(one_step(feats), fpn(feats[1:])):
        torch.testing.assert_close(a, b)
    second = fpn(neck.rfp_modules[0].rfp_forward(images, [fpn(feats[1:])[0]] + [
        neck.rfp_aspp(level) for level in fpn(feats[1:])[1:]]))
    for got, new, old in zip(neck(feats), second, fpn(feats[1:])):  # rfp_weight starts at 0: sigmoid 0.5
        torch.testing.assert_close(got, 0.5 * new + 0.5 * old)
    with pytest.raises(ValueError, match="output_img"):
        neck(feats[1:])
    assert ASPP(8, 2)(torch.randn(1, 8, 5, 5)).shape == (1, 8, 5, 5)
