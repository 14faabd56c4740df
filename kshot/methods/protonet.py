"""Prototypical Networks (Snell et al. 2017).

Each class is represented by the mean embedding of its support examples (its prototype); a query's
logits are minus its squared Euclidean distance to each prototype (or the scaled cosine similarity).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..backbones import encode
from ..errors import check_choice
from .base import FewShotMethod, class_means, num_ways


class ProtoNet(FewShotMethod):
    def __init__(self, backbone, distance: str = "euclidean", scale: float = 10.0):
        super().__init__(backbone)
        self.distance = check_choice("distance", distance, ("euclidean", "cosine"))
        self.scale = float(scale)

    def hparams(self) -> dict:
        return {"distance": self.distance, "scale": self.scale}

    def forward(self, support, support_labels, query):
        way = num_ways(support_labels)
        z_support = encode(self.backbone, support)
        z_query = encode(self.backbone, query)
        prototypes = class_means(z_support, support_labels, way)
        if self.distance == "cosine":
            return self.scale * F.normalize(z_query, dim=-1) @ F.normalize(prototypes, dim=-1).transpose(-1, -2)
        return -squared_distances(z_query, prototypes)


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``||a_i - b_j||^2`` for ``[..., Q, D]`` and ``[..., N, D]`` -> ``[..., Q, N]``."""
    return (a.pow(2).sum(-1, keepdim=True) - 2 * a @ b.transpose(-1, -2)
            + b.pow(2).sum(-1).unsqueeze(-2)).clamp_min(0)
