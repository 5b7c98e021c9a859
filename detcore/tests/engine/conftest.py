"""Engine tests run tiny models: one torch thread avoids oversubscribing the shared cores."""

from __future__ import annotations

import torch

torch.set_num_threads(1)
