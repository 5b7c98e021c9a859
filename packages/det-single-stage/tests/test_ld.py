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


def ld_model(teacher_ckpt=None):
    cfg = copy.deepcopy(load_config("ld_r18_gflv1_r18_fpn_shapes")["model"])
    cfg["teacher_ckpt"] = teacher_ckpt
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


def test_distillation_gradient_reaches_the_student_only_and_training_reduces_loss():
    """A teacher with peaked side distributions (large random biases): loss_ld is positive, its gradient reaches
    the student's distribution branch and never the teacher; a few small steps reduce the total loss."""
    model = ld_model().train()
    with torch.no_grad():
        bias = model.teacher_model.bbox_head.gfl_reg.bias
        bias.copy_(torch.randn(bias.shape, generator=torch.Generator().manual_seed(0)) * 30)
    batch = tiny_batch()
    losses = model.loss(batch)
    assert losses["loss_ld"].item() > 0.1
    losses["loss_ld"].backward()
    assert model.bbox_head.gfl_reg.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher_model.parameters())
    model.zero_grad()
    history = train_steps(model, batch, 5, 0.003)
    assert {"loss_cls", "loss_bbox", "loss_dfl", "loss_ld"} <= set(history[0])
    totals = [h["total"] for h in history]
    assert all(torch.isfinite(torch.tensor(totals))) and totals[-1] < 0.99 * totals[0], totals
