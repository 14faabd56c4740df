"""Nearest support word (NNShot, Yang & Katiyar 2020): a word's score for a tag is minus its squared
distance to the nearest support word with that tag (softmax with ``scale`` for probabilities)."""

from __future__ import annotations

import torch

from ...core.prototypes import squared_distances
from .base import TagMethod, split_rows, token_matrix


def nearest_distances(
    X: torch.Tensor, support: torch.Tensor, labels: torch.Tensor, n_classes: int, chunk: int = 4096
) -> torch.Tensor:
    """``[W, n_classes]``: squared distance of each row of X to its nearest support row of each class."""
    out = []
    for rows in X.split(chunk):
        d = squared_distances(rows, support)
        out.append(
            torch.stack(
                [
                    d[:, labels == c].min(-1).values if (labels == c).any() else torch.full((len(rows),), float("inf"))
                    for c in range(n_classes)
                ],
                -1,
            )
        )
    return torch.cat(out)


class NNShot(TagMethod):
    name = "nnshot"

    def __init__(self, scale: float = 5.0):
        super().__init__(scale=scale)

    def fit(self, encoder, sentences, labels, n_classes):
        self.support, self.support_labels = token_matrix(encoder, sentences, labels)
        self.n_classes = n_classes
        return self

    def distances(self, encoder, sentences) -> torch.Tensor:
        n = int(self.support_labels.max()) + 1 if not hasattr(self, "n_classes") else self.n_classes
        return nearest_distances(token_matrix(encoder, sentences), self.support, self.support_labels, n)

    def scores(self, encoder, sentences):
        logits = -self.params["scale"] * self.distances(encoder, sentences)
        return split_rows(logits.log_softmax(-1), sentences)

    def load_state(self, state, encoder=None):
        super().load_state(state)
        self.n_classes = self.params.get("n_classes") or int(self.support_labels.max()) + 1
        return self
