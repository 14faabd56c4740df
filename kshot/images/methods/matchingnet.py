"""Matching Networks (Vinyals et al. 2016).

A query's class distribution is an attention-weighted vote of the support labels,
``P(y | x) = sum_i a(x, x_i) y_i``, with ``a`` a softmax over the cosine similarities of the query
embedding ``f(x)`` to the support embeddings ``g(x_i)``. Training minimises the negative
log-likelihood of the query labels, so the logits are ``log P(y | x)``.

``fce=True`` adds the full-context embeddings: ``g`` runs a bidirectional LSTM over the support
embeddings (``g(x_i) = g'(x_i) + h_fwd_i + h_bwd_i``), and ``f`` is an attention LSTM that reads the
support set for ``process_steps`` steps (its input is the query embedding joined with the attention
read-out; its output is added to the query embedding). ``scale`` multiplies the cosines before the
softmax (``scale=1`` is the paper's plain softmax; a larger one lets the attention become sharp).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...core.errors import check_positive_int
from ...core.prototypes import cosine_logits, num_ways
from ..backbones import encode
from .base import FewShotMethod


class MatchingNet(FewShotMethod):
    def __init__(self, backbone, fce: bool = False, process_steps: int = 10, scale: float = 10.0):
        super().__init__(backbone)
        self.fce = bool(fce)
        self.process_steps = check_positive_int("process_steps", process_steps, 1)
        self.scale = float(scale)
        dim = backbone.out_dim
        if self.fce:
            self.support_lstm = nn.LSTM(dim, dim, batch_first=True, bidirectional=True)
            self.query_cell = nn.LSTMCell(2 * dim, dim)

    def hparams(self) -> dict:
        return {"fce": self.fce, "process_steps": self.process_steps, "scale": self.scale}

    def forward(self, support, support_labels, query):
        g = encode(self.backbone, support)  # [..., S, D]
        f = encode(self.backbone, query)  # [..., Q, D]
        if self.fce:
            g = self.embed_support(g)
            f = self.embed_query(f, g)
        attention = cosine_logits(f, g, self.scale).softmax(-1)  # [..., Q, S]
        onehot = F.one_hot(support_labels, num_ways(support_labels)).to(attention.dtype)
        return (attention @ onehot).clamp_min(1e-12).log()  # [..., Q, N]

    def embed_support(self, g: torch.Tensor) -> torch.Tensor:
        """Full-context support embeddings: ``g' + `` both directions of a BiLSTM over the support set."""
        out, _ = self.support_lstm(g.reshape(-1, *g.shape[-2:]))
        forward, backward = out.reshape(*g.shape[:-1], 2, -1).unbind(-2)
        return g + forward + backward

    def embed_query(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Full-context query embeddings: an attention LSTM reading the support set ``process_steps`` times."""
        dim = f.shape[-1]
        h, c = f, torch.zeros_like(f)
        for _ in range(self.process_steps):
            readout = (h @ g.transpose(-1, -2)).softmax(-1) @ g  # [..., Q, D]
            h, c = self.query_cell(
                torch.cat([f, readout], -1).reshape(-1, 2 * dim), (h.reshape(-1, dim), c.reshape(-1, dim))
            )
            h, c = h.reshape(f.shape) + f, c.reshape(f.shape)
        return h
