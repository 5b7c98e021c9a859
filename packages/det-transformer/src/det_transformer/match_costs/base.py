"""What a match cost is: a (num_predictions, num_gts) matrix, lower = better pair, scaled by ``weight``."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor

from detcore.structures import Instances


class MatchCost(ABC):
    """One term of the bipartite matching cost of DETR (Carion et al., "End-to-End Object Detection with
    Transformers"): ``cost(pred, gt)`` is (num_pred, num_gt), already multiplied by ``weight``.

    ``pred`` carries ``scores`` (class logits, (P, C)) and/or ``boxes`` (xyxy, input-image pixels) and
    ``image_size`` (h, w); ``gt`` carries ``boxes`` and ``labels``.
    """

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = float(weight)

    def __call__(self, pred: Instances, gt: Instances) -> Tensor:
        return self.cost(pred, gt) * self.weight

    @abstractmethod
    def cost(self, pred: Instances, gt: Instances) -> Tensor: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}(weight={self.weight})"


def require(pred: Instances, name: str, cost: MatchCost) -> Tensor:
    """The prediction field a cost reads, with an error naming the cost when the head did not set it."""
    if not pred.has(name):
        raise KeyError(f"{type(cost).__name__} needs predictions with `{name}`; the head did not give them")
    return pred.get(name)
