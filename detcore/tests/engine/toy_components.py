"""A tiny detector and synthetic dataset for engine tests (no detcore.data or model families needed).

Also installed as module ``detcore_toys`` in a fake distribution for subprocess tests (torchrun, CLI).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import torch
import torch.nn.functional as F
from pycocotools.coco import COCO
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from detcore.interfaces import Dataset, Detector
from detcore.structures import Batch, DetSample, ImageMeta, Instances, collate

CLASSES = ("square", "bar", "dot")


class ToyDataset(Dataset):
    """``num_images`` random 32x32 images; one object each whose box and class depend on the index."""

    classes = CLASSES

    def __init__(self, num_images: int = 8, size: int = 32, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.size = size
        self.images = torch.rand(num_images, 3, size, size, generator=gen)
        self.boxes = []
        self.labels = []
        for i in range(num_images):
            x1, y1 = float(2 + i % 5), float(3 + (i * 3) % 7)
            self.boxes.append([x1, y1, x1 + 12.0 + i % 4, y1 + 10.0 + i % 3])
            self.labels.append(i % len(CLASSES))
            # make the box region brighter so the detector has something to learn
            self.images[i, :, int(y1) : int(y1) + 10, int(x1) : int(x1) + 12] += 1.0
        self.cat_ids = [1, 2, 3]
        self.coco = self._make_coco()

    def _make_coco(self) -> COCO:
        coco = COCO()
        coco.dataset = {
            "images": [{"id": i, "width": self.size, "height": self.size, "file_name": f"{i}.png"} for i in range(len(self))],
            "annotations": [
                {
                    "id": i + 1,
                    "image_id": i,
                    "category_id": self.cat_ids[self.labels[i]],
                    "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                    "area": (b[2] - b[0]) * (b[3] - b[1]),
                    "iscrowd": 0,
                }
                for i, b in enumerate(self.boxes)
            ],
            "categories": [{"id": c, "name": n} for c, n in zip(self.cat_ids, CLASSES)],
        }
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
        return coco

    def __len__(self) -> int:
        return len(self.images)

    def get_data_info(self, index: int) -> dict[str, Any]:
        return {"img_id": index, "width": self.size, "height": self.size}

    def __getitem__(self, index: int) -> DetSample:
        shape = (self.size, self.size)
        meta = ImageMeta(ori_shape=shape, img_shape=shape, pad_shape=shape, image_id=index, file_name=f"{index}.png")
        gt = Instances(
            shape,
            boxes=torch.tensor([self.boxes[index]], dtype=torch.float32),
            labels=torch.tensor([self.labels[index]], dtype=torch.int64),
        )
        return DetSample(image=self.images[index].clone(), meta=meta, gt=gt)


class ToyDetector(Detector):
    """conv + GroupNorm + dropout + pooled linear heads: one box and class per image; losses are batch means.

    ``last_dtype`` records the dtype of the last head output (to observe mixed precision).
    """

    def __init__(self, num_classes: int = len(CLASSES), width: int = 8, dropout: float = 0.2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.norm = nn.GroupNorm(2, width)
        self.drop = nn.Dropout(dropout)
        self.cls = nn.Linear(width, num_classes)
        self.reg = nn.Linear(width, 4)
        self.last_dtype: torch.dtype | None = None

    def extract_feat(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (F.relu(self.norm(self.conv(images))),)

    def _heads(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.drop(self.extract_feat(images)[0].mean(dim=(2, 3)))
        logits = self.cls(pooled)
        self.last_dtype = logits.dtype
        return logits, self.reg(pooled) * 8.0 + 16.0

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        logits, boxes = self._heads(batch.images)
        labels = torch.stack([g.labels[0] for g in batch.gt])
        targets = torch.stack([g.boxes[0] for g in batch.gt])
        return {
            "loss_cls": F.cross_entropy(logits, labels),
            "loss_bbox": F.smooth_l1_loss(boxes, targets) * 0.1,
            "acc": (logits.argmax(1) == labels).float().mean(),
        }

    def predict(self, batch: Batch, rescale: bool = True) -> list[Instances]:
        logits, boxes = self._heads(batch.images)
        probs = logits.softmax(1)
        out = []
        for i, meta in enumerate(batch.metas):
            box = boxes[i : i + 1].clone()
            if meta.flip:  # horizontal only: undo the test-time flip
                width = meta.img_shape[1]
                box = torch.stack([width - box[:, 2], box[:, 1], width - box[:, 0], box[:, 3]], dim=1)
            if rescale:
                sx, sy = meta.scale_factor
                box = box / box.new_tensor([sx, sy, sx, sy])
            score, label = probs[i].max(0)
            out.append(Instances(meta.ori_shape, boxes=box, scores=score[None], labels=label[None]))
        return out


def toy_loader(
    dataset: Dataset, batch_size: int = 2, shuffle: bool = True, distributed: bool = False, seed: int = 0
) -> DataLoader:
    """A plain DataLoader with detcore's collate (a DistributedSampler when ``distributed``)."""
    if distributed:
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate)


def toy_runner(work_dir: Any, num_images: int = 8, batch_size: int = 2, seed: int = 0, **kwargs: Any) -> Any:
    """A Runner over ToyDetector/ToyDataset; ``kwargs`` override the defaults below."""
    from detcore.engine import Runner

    torch.manual_seed(seed)
    dataset = ToyDataset(num_images)
    defaults: dict[str, Any] = {
        "train_dataloader": toy_loader(dataset, batch_size, shuffle=True),
        "optimizer": {"type": "SGD", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4},
        "runner": {"type": "EpochBasedRunner", "max_epochs": 2},
        "log": {"interval": 1, "progress_bar": False},
        "seed": seed,
        "deterministic": True,
    }
    defaults.update(kwargs)
    return Runner(ToyDetector(), work_dir, **defaults)
