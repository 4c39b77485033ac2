"""A tiny detector and a tiny data set for the training tests (milliseconds per step on a CPU).

Both follow the project's contracts: items are ``(image [3, S, S] float in [0, 1], {"boxes" [N, 4]
xyxy float32, "labels" [N] int64})``, and the model follows torchvision's detection API (a dict of
scalar losses in training mode, one ``{boxes, labels, scores}`` per image in eval mode).
"""

from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset


class TinyShapes(Dataset):
    """``n`` images of size ``size`` with one bright square each; box and label (1..3) are a pure
    function of ``(seed, index)``.

    With ``augment=True`` every item also draws from Python's, NumPy's and torch's global
    generators (a random flip and noise), the way a careless augmentation does: a resumed run only
    matches an uninterrupted one if all three generators are restored.
    """

    def __init__(self, n: int = 10, size: int = 16, seed: int = 0, augment: bool = False):
        self.n, self.size, self.seed, self.augment = n, size, seed, augment

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        if not 0 <= index < self.n:
            raise IndexError(index)
        g = torch.Generator().manual_seed(self.seed * 100_003 + index)
        s = self.size
        side = int(torch.randint(3, s // 2, (), generator=g))
        x1, y1 = (int(v) for v in torch.randint(0, s - side, (2,), generator=g))
        label = int(torch.randint(1, 4, (), generator=g))
        image = torch.rand(3, s, s, generator=g) * 0.2
        image[label - 1, y1 : y1 + side, x1 : x1 + side] = 1.0
        box = torch.tensor([[x1, y1, x1 + side, y1 + side]], dtype=torch.float32)
        if self.augment:
            if random.random() < 0.5:
                image = image.flip(-1)
                box = torch.stack([s - box[:, 2], box[:, 1], s - box[:, 0], box[:, 3]], dim=1)
            image = image + float(np.random.uniform(0, 0.05)) * torch.rand(3, s, s)
        return image, {"boxes": box, "labels": torch.tensor([label], dtype=torch.int64)}


class TinyDetector(nn.Module):
    """One conv, a global pool, and two linear heads predicting one box (x1, y1 and a width and
    height, in pixels) and one class per image, trained on each image's first ground-truth box.

    Both losses are means over the batch: the loss of a combined batch is then the mean of the
    losses of its halves, which is what DistributedDataParallel's gradient averaging computes.
    """

    def __init__(self, num_classes: int = 4, size: int = 16, dropout: float = 0.0):
        super().__init__()
        self.size = size
        self.backbone = nn.Conv2d(3, 8, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.box_head = nn.Linear(8, 4)
        self.cls_head = nn.Linear(8, num_classes)

    def forward(self, images, targets=None):
        x = torch.stack(list(images))
        features = self.drop(F.relu(self.backbone(x)).mean(dim=(2, 3)))
        xy, wh = (torch.sigmoid(self.box_head(features)) * self.size).split(2, dim=1)
        boxes = torch.cat((xy, xy + wh), dim=1)  # x2 >= x1, y2 >= y1 by construction
        logits = self.cls_head(features)
        if self.training:
            if targets is None:
                raise ValueError("targets are needed in training mode")
            gt_boxes = torch.stack([t["boxes"][0] for t in targets])
            gt_labels = torch.stack([t["labels"][0] for t in targets])
            return {
                "loss_box": F.smooth_l1_loss(boxes / self.size, gt_boxes / self.size),
                "loss_cls": F.cross_entropy(logits, gt_labels),
            }
        # a detection is of an object class (1 and up): the best one, with its probability
        scores, best = logits.softmax(dim=1)[:, 1:].max(dim=1)
        labels = best + 1
        return [
            {"boxes": boxes[i : i + 1], "labels": labels[i : i + 1], "scores": scores[i : i + 1]}
            for i in range(len(boxes))
        ]


def tiny_setup(
    seed: int = 0,
    lr: float = 0.1,
    dropout: float = 0.0,
    adam: bool = False,
    model_cls: type[TinyDetector] = TinyDetector,
):
    """A freshly initialised TinyDetector (or subclass; the same weights for the same ``seed``)
    and an optimizer on it: SGD with momentum, or Adam."""
    torch.manual_seed(seed)
    model = model_cls(dropout=dropout)
    if adam:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return model, optimizer


def state_equal(a: nn.Module, b: nn.Module) -> bool:
    """True when every parameter and buffer of ``a`` and ``b`` is bit-for-bit the same."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
