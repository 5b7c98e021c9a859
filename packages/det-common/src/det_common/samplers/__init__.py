"""Samplers: random, pseudo (all) and online hard example mining."""

from det_common.samplers.base import BaseSampler, build_sampling_result
from det_common.samplers.ohem import OHEMSampler
from det_common.samplers.pseudo import PseudoSampler
from det_common.samplers.random import RandomSampler, random_choice

__all__ = ["BaseSampler", "OHEMSampler", "PseudoSampler", "RandomSampler", "build_sampling_result", "random_choice"]
