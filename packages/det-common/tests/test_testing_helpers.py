"""The parity helpers the families use to compare with torchvision must really discriminate."""

import torch

from det_common.testing import match_detections
from detcore.structures import Instances


def test_match_detections_counts_one_to_one_matches():
    ref = {"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]]),
           "labels": torch.tensor([1, 2, 1]), "scores": torch.tensor([0.9, 0.8, 0.7])}
    ours = Instances(boxes=torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30.5]]),
                     labels=torch.tensor([1, 2]), scores=torch.tensor([0.9, 0.8]))
    # third reference box has no partner left (one to one); second is off by IoU 10/10.5 < 0.99
    assert match_detections(ref, ours) == 1 / 3
    ours.set("labels", torch.tensor([2, 2]))
    assert match_detections(ref, ours) == 0.0
    ours.set("boxes", torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]))
    ours.set("labels", torch.tensor([1, 2]))
    assert match_detections(ref, ours) == 2 / 3
