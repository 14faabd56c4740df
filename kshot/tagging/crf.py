"""A linear-chain CRF over word labels: negative log-likelihood (forward algorithm) and Viterbi."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .decode import viterbi


class CRF(nn.Module):
    def __init__(self, n_classes: int):
        super().__init__()
        self.transitions = nn.Parameter(torch.zeros(n_classes, n_classes))  # from -> to
        self.start = nn.Parameter(torch.zeros(n_classes))
        self.end = nn.Parameter(torch.zeros(n_classes))

    def nll(self, emissions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of one sentence: ``emissions`` [L, C], ``labels`` [L]."""
        gold = self.start[labels[0]] + emissions.gather(1, labels[:, None]).sum() + self.end[labels[-1]]
        gold = gold + self.transitions[labels[:-1], labels[1:]].sum()
        alpha = self.start + emissions[0]
        for e in emissions[1:]:
            alpha = torch.logsumexp(alpha[:, None] + self.transitions, 0) + e
        return torch.logsumexp(alpha + self.end, 0) - gold

    def decode(self, emissions: torch.Tensor) -> np.ndarray:
        e = emissions.detach().clone()
        e[-1] = e[-1] + self.end.detach()
        return viterbi(e, self.transitions.detach(), self.start.detach())
