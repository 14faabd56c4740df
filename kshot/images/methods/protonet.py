"""Prototypical Networks (Snell et al. 2017).

Each class is represented by the mean embedding of its support examples (its prototype); a query's
logits are minus its squared Euclidean distance to each prototype (or the scaled cosine similarity).
"""

from __future__ import annotations

from ...core.errors import check_choice
from ...core.prototypes import class_means, cosine_logits, num_ways, squared_distances
from ..backbones import encode
from .base import FewShotMethod


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
            return cosine_logits(z_query, prototypes, self.scale)
        return -squared_distances(z_query, prototypes)
