"""A tiny synthetic image-like dataset: Gaussian clusters shaped [1, 6, 6], one cluster per class."""

import numpy as np
import torch

from kshot.data import DatasetInfo, LabeledData


def toy_data(n_classes=12, per_class=20, seed=0, split="train", noise=0.6) -> LabeledData:
    offset = {"train": 0, "val": 1000, "test": 2000}.get(split, 3000)
    g = torch.Generator().manual_seed(seed + offset)
    centers = torch.randn(n_classes, 1, 6, 6, generator=g)
    items = centers.repeat_interleave(per_class, 0) + noise * torch.randn(n_classes * per_class, 1, 6, 6, generator=g)
    labels = np.repeat(np.arange(n_classes), per_class)
    return LabeledData(items, labels, [f"c{i}" for i in range(n_classes)], name="toy", split=split)


TOY = DatasetInfo(
    name="toy",
    description="synthetic clusters",
    folder="toy",
    splits=("train", "val", "test"),
    files=lambda root: [],
    load=lambda split, root=None, **kw: toy_data(split=split, **kw),
)
