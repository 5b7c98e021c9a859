"""Classification match costs: softmax probability (DETR) and focal-loss cost (Deformable DETR, Sparse R-CNN)."""

from __future__ import annotations

from torch import Tensor

from det_transformer.match_costs.base import MatchCost, require
from detcore.structures import Instances


class ClassificationCost(MatchCost):
    """Minus the softmax probability of the ground truth's class (DETR, Carion et al. 2020)."""

    def cost(self, pred: Instances, gt: Instances) -> Tensor:
        probs = require(pred, "scores", self).softmax(-1)
        return -probs[:, gt.labels]


class FocalLossCost(MatchCost):
    """The focal loss of calling the prediction the ground truth's class minus that of calling it background,
    on sigmoid scores (Deformable DETR, Zhu et al. 2021; Sparse R-CNN, Sun et al. 2021)."""

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, eps: float = 1e-12, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.alpha, self.gamma, self.eps = float(alpha), float(gamma), float(eps)

    def cost(self, pred: Instances, gt: Instances) -> Tensor:
        prob = require(pred, "scores", self).sigmoid()[:, gt.labels]
        neg = -(1 - prob + self.eps).log() * (1 - self.alpha) * prob.pow(self.gamma)
        pos = -(prob + self.eps).log() * self.alpha * (1 - prob).pow(self.gamma)
        return pos - neg
