"""Class means, distances and cosine logits: the arithmetic of every prototype and nearest-neighbour head
(the image metric methods, the text and image prototype heads, the tagging heads).

Shapes carry any leading batch dimensions: ``[..., S, D]`` features with ``[..., S]`` labels in
``0..N-1`` give ``[..., N, D]`` means; distances and logits of ``[..., Q, D]`` rows to ``[..., N, D]`` rows
are ``[..., Q, N]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def num_ways(support_labels: torch.Tensor) -> int:
    return int(support_labels.max()) + 1


def class_means(features: torch.Tensor, labels: torch.Tensor, way: int) -> torch.Tensor:
    """Mean feature of each class: ``[..., S, D]`` features and ``[..., S]`` labels -> ``[..., N, D]``."""
    onehot = F.one_hot(labels, way).to(features.dtype)  # [..., S, N]
    sums = onehot.transpose(-1, -2) @ features  # [..., N, D]
    return sums / onehot.sum(-2).unsqueeze(-1).clamp_min(1)


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``||a_i - b_j||^2`` for ``[..., Q, D]`` and ``[..., N, D]`` -> ``[..., Q, N]``."""
    return (a.pow(2).sum(-1, keepdim=True) - 2 * a @ b.transpose(-1, -2) + b.pow(2).sum(-1).unsqueeze(-2)).clamp_min(0)


def cosine_logits(x: torch.Tensor, weights: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale`` x cosine similarity of ``[..., Q, D]`` rows to ``[..., N, D]`` rows -> ``[..., Q, N]``."""
    return scale * F.normalize(x, dim=-1) @ F.normalize(weights, dim=-1).transpose(-1, -2)
