"""LD: the KL loss by hand, the teacher outside the student's state dict, its checkpoint, a short training run."""

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from ss_helpers import tiny_batch

from det_common.testing import train_steps
from det_single_stage.losses.kd import KnowledgeDistillationKLDivLoss
from detcore.config import load_config
from detcore.errors import ConfigError
from detcore.registry import build


def ld_model(teacher_ckpt=None, loss_weights=None):
    """The shapes LD student; ``loss_weights`` overrides head losses' ``loss_weight`` by name."""
    cfg = copy.deepcopy(load_config("ld_r18_gflv1_r18_fpn_shapes")["model"])
    cfg["teacher_ckpt"] = teacher_ckpt
    for name, weight in (loss_weights or {}).items():
        cfg["bbox_head"][name]["loss_weight"] = weight
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*untrained teacher")
        return build("detectors", cfg)


def test_kl_div_loss_by_hand():
    student, teacher = torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[2.0, 1.0, 0.0]])
    p = F.softmax(teacher / 2, dim=1)
    expected = (p * (p.log() - F.log_softmax(student / 2, dim=1))).mean() * 4
    assert torch.allclose(KnowledgeDistillationKLDivLoss(T=2)(student, teacher), expected)
    assert KnowledgeDistillationKLDivLoss(T=2)(teacher, teacher).abs() < 1e-6


def test_teacher_is_frozen_outside_the_state_dict_and_loads_its_checkpoint(tmp_path):
    torch.manual_seed(1)
    teacher = build("detectors", load_config("gfl_r18_fpn_shapes")["model"])
    torch.save({"state_dict": teacher.state_dict()}, tmp_path / "teacher.pth")
    model = ld_model(str(tmp_path / "teacher.pth")).train()
    assert not any(k.startswith("teacher") for k in model.state_dict())
    assert not model.teacher_model.training
    assert all(not p.requires_grad for p in model.teacher_model.parameters())
    assert torch.equal(model.teacher_model.bbox_head.gfl_reg.weight, teacher.bbox_head.gfl_reg.weight)
    with pytest.raises(ConfigError, match="teacher_ckpt .*bad.pth.*do not fit"):  # another model's checkpoint
        torch.save({"state_dict": {"x": torch.zeros(1)}}, tmp_path / "bad.pth")
        ld_model(str(tmp_path / "bad.pth"))


def test_missing_teacher_checkpoint_says_how_to_make_it(tmp_path):
    with pytest.raises(ConfigError, match="teacher_ckpt .*none.pth does not exist: train the teacher "
                                          r"\(gfl_r18_fpn_shapes\) first.*model.teacher_ckpt=PATH"):
        ld_model(str(tmp_path / "none.pth"))


def test_distillation_gradient_reaches_the_student_only_and_pulls_it_to_the_teacher():
    """A teacher with peaked side distributions (large random biases): loss_ld is positive, its gradient reaches
    the student's distribution branch and never the teacher. LD weighs each positive by the student's class
    score, so the student starts at score 0.5 (class bias 0); with the other losses at weight 0, 8 steps on one
    batch bring the KL divergence to the teacher down to under a quarter."""
    full = ld_model().train().loss(tiny_batch())
    assert {"loss_cls", "loss_bbox", "loss_dfl", "loss_ld"} <= set(full)
    model = ld_model(loss_weights={"loss_cls": 0.0, "loss_bbox": 0.0, "loss_dfl": 0.0}).train()
    with torch.no_grad():
        bias = model.teacher_model.bbox_head.gfl_reg.bias
        bias.copy_(torch.randn(bias.shape, generator=torch.Generator().manual_seed(0)) * 30)
        model.bbox_head.gfl_cls.bias.zero_()
    batch = tiny_batch()
    losses = model.loss(batch)
    assert losses["loss_ld"].item() > 1.0
    losses["loss_ld"].backward()
    assert model.bbox_head.gfl_reg.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher_model.parameters())
    model.zero_grad()
    kl = [h["loss_ld"] for h in train_steps(model, batch, 8, 0.01)]
    assert all(torch.isfinite(torch.tensor(kl))) and kl[-1] < 0.25 * kl[0], kl
