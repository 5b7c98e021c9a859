"""KnowledgeDistillationSingleStageDetector (Localization Distillation, Zheng et al. 2022): a single-stage student
trained with a frozen teacher detector's head outputs as soft targets."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from det_common.detectors import SingleStageDetector
from det_single_stage.heads.ld_head import TEACHER_KEY
from detcore.checkpoint import load_state_dict_file
from detcore.config import load_config
from detcore.registry import build
from detcore.structures import Batch


class KnowledgeDistillationSingleStageDetector(SingleStageDetector):
    """The student (``backbone``, ``neck``, ``bbox_head``) and a teacher built from ``teacher_config`` (a config
    name or file) with the weights of ``teacher_ckpt``. The teacher is not a submodule: its weights stay out of
    the student's state dict and optimizer, it follows the student's device and dtype, and it stays in eval mode
    (``eval_teacher``). Training gives the head the teacher's box outputs in ``outs.extras``."""

    def __init__(
        self,
        backbone: Mapping[str, Any],
        bbox_head: Mapping[str, Any],
        teacher_config: str | Mapping[str, Any],
        teacher_ckpt: str | None = None,
        eval_teacher: bool = True,
        neck: Mapping[str, Any] | None = None,
        train_cfg: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(backbone, bbox_head, neck=neck, train_cfg=train_cfg, test_cfg=test_cfg)
        cfg = load_config(teacher_config) if isinstance(teacher_config, str) else dict(teacher_config)
        teacher_name = teacher_config if isinstance(teacher_config, str) else "given config"
        teacher = build("detectors", cfg["model"])
        if teacher_ckpt is not None:
            if not Path(teacher_ckpt).is_file():
                raise ValueError(f"teacher_ckpt {teacher_ckpt} does not exist: train the teacher ({teacher_name}) "
                                 "first, then give its checkpoint (`--set model.teacher_ckpt=PATH` on `detcore train` "
                                 "and `detcore test`)")
            try:
                teacher.load_state_dict(load_state_dict_file(teacher_ckpt), strict=True)
            except RuntimeError as exc:
                raise ValueError(f"teacher_ckpt {teacher_ckpt}: its weights do not fit the teacher built from "
                                 f"teacher_config {teacher_config!r}; give that model's checkpoint") from exc
        else:
            warnings.warn(f"{type(self).__name__}: no teacher_ckpt, the student distils an untrained teacher "
                          f"({teacher_name})", stacklevel=2)
        for param in teacher.parameters():
            param.requires_grad_(False)
        self.eval_teacher = eval_teacher
        object.__setattr__(self, "teacher_model", teacher)

    def _apply(self, fn: Callable[[Tensor], Tensor], *args: Any, **kwargs: Any) -> nn.Module:
        self.teacher_model._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode: bool = True) -> nn.Module:
        self.teacher_model.train(False if self.eval_teacher else mode)
        return super().train(mode)

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        with torch.no_grad():
            teacher_outs = self.teacher_model.bbox_head(self.teacher_model.extract_feat(batch.images))
        outs = self.bbox_head(self.extract_feat(batch.images))
        outs.extras[TEACHER_KEY] = teacher_outs.bbox_preds
        return self.bbox_head.loss_by_feat(outs, batch)
