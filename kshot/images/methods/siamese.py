"""Siamese networks (Koch et al. 2015).

Twin encoders (one shared backbone) embed two items; the "same class" score is a sigmoid of a
learned weighted L1 distance between the embeddings, ``sigmoid(w . |z1 - z2| + b)``. Training is
binary cross-entropy on balanced same / different pairs drawn from the items of each training
episode (support and query together; an item is never paired with itself). An N-way K-shot query
goes to the class whose support examples it is most similar to on average.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...core.errors import KshotError, check_positive_int
from ...core.prototypes import num_ways
from ..backbones import encode
from .base import FewShotMethod, episode_items


class Siamese(FewShotMethod):
    def __init__(self, backbone, pairs: int = 256):
        super().__init__(backbone)
        self.pairs = check_positive_int("pairs", pairs, 2)
        self.head = nn.Linear(backbone.out_dim, 1)  # the weights of the weighted L1 distance
        with torch.no_grad():  # start as "nearer is more similar", so an untrained model ranks by L1
            self.head.weight.copy_(-self.head.weight.abs())

    def hparams(self) -> dict:
        return {"pairs": self.pairs}

    def similarity_logits(self, za: torch.Tensor, zb: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid "same class" scores of every row of ``[..., A, D]`` with every row of ``[..., B, D]``."""
        return self.head((za.unsqueeze(-2) - zb.unsqueeze(-3)).abs()).squeeze(-1)  # [..., A, B]

    def classify(self, z_support, support_labels, z_query) -> torch.Tensor:
        """Log of the mean "same class" probability of each query to each class's support examples
        (computed in log space, so saturated sigmoids do not tie)."""
        log_p = F.logsigmoid(self.similarity_logits(z_query, z_support))  # [..., Q, S]
        onehot = F.one_hot(support_labels, num_ways(support_labels)).to(log_p.dtype)  # [..., S, N]
        log_sum = (log_p.unsqueeze(-1) + onehot.log().unsqueeze(-3)).logsumexp(-2)  # [..., Q, N]
        return log_sum - onehot.sum(-2).log().unsqueeze(-2)

    def forward(self, support, support_labels, query):
        return self.classify(encode(self.backbone, support), support_labels, encode(self.backbone, query))

    def loss(self, episode):
        items, labels = episode_items(episode)
        z = encode(self.backbone, items)  # [..., M, D]
        first, second, same = sample_pairs(labels, self.pairs)
        za = z.gather(-2, first.unsqueeze(-1).expand(*first.shape, z.shape[-1]))
        zb = z.gather(-2, second.unsqueeze(-1).expand(*second.shape, z.shape[-1]))
        scores = self.head((za - zb).abs()).squeeze(-1)
        loss = F.binary_cross_entropy_with_logits(scores, same)
        s = episode.support_labels.shape[-1]
        with torch.no_grad():  # query logits only for the training accuracy
            logits = self.classify(z[..., :s, :], episode.support_labels, z[..., s:, :])
        return loss, logits


def sample_pairs(labels: torch.Tensor, n: int, generator: torch.Generator | None = None):
    """``n`` index pairs ``(first, second)`` into ``labels`` (``[M]`` or ``[T, M]``), half of them of the
    same class and half of different classes, never an item with itself; returns ``(first, second,
    same)`` with ``same`` 1.0 for same-class pairs. Pairs are drawn uniformly, with replacement."""
    single = labels.dim() == 1
    labels = labels.unsqueeze(0) if single else labels
    m = labels.shape[-1]
    equal = labels.unsqueeze(-1) == labels.unsqueeze(-2)  # [T, M, M]
    equal &= ~torch.eye(m, dtype=torch.bool, device=labels.device)
    different = labels.unsqueeze(-1) != labels.unsqueeze(-2)
    if not equal.flatten(1).any(1).all() or not different.flatten(1).any(1).all():
        raise KshotError(
            "Siamese training needs at least 2 classes and 2 items of some class per episode; raise way, shot or query"
        )
    n_same = n // 2
    picks = torch.cat(
        [
            torch.multinomial(equal.flatten(1).float(), n_same, True, generator=generator),
            torch.multinomial(different.flatten(1).float(), n - n_same, True, generator=generator),
        ],
        1,
    )
    same = torch.cat([torch.ones(n_same), torch.zeros(n - n_same)]).to(labels.device).expand_as(picks)
    first, second = picks // m, picks % m
    if single:
        return first[0], second[0], same[0]
    return first, second, same.contiguous()
