"""Contrastive fine-tuning of a sentence encoder on same/different-class pairs (the SetFit recipe).

Pairs come from a ``PairStream`` (memory independent of the number of possible pairs) for a fixed
step budget; each batch is tokenised with dynamic padding. Two losses:

* ``cosine``: SetFit's loss, squared error between cos(e_i, e_j) and 1 (same class) or 0;
* ``supcon``: supervised contrastive loss over every text of the batch (all B x B pairs, temperature
  ``temperature``), which gets more signal out of each forward pass.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .encoder import SentenceEncoder
from .loop import run_steps
from .pairs import PairStream

LOSSES = ("cosine", "supcon")


def supcon_loss(emb: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Khosla et al. (2020): mean log-probability of same-class partners among all others."""
    sim = emb @ emb.T / temperature
    self_mask = torch.eye(len(emb), dtype=torch.bool)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~self_mask
    has_pos = pos.any(1)
    per_anchor = -(log_prob.masked_fill(~pos, 0).sum(1) / pos.sum(1).clamp_min(1))
    return per_anchor[has_pos].mean()


def contrastive_finetune(encoder: SentenceEncoder, texts: list[str], labels: np.ndarray, steps: int = 200,
                         pairs_per_step: int = 16, lr: float = 2e-5, loss: str = "supcon",
                         temperature: float = 0.05, seed: int = 0, progress: bool = False,
                         balanced: bool = True, per_class: int = 2, time_limit: float | None = None,
                         max_steps: int | None = None) -> list[float]:
    """Fine-tune ``encoder`` (a trainable copy) in place; returns the per-step losses.

    ``supcon`` with ``balanced`` (the default) draws ``pairs_per_step`` classes and two texts of each per
    step (``per_class`` texts of each when more than 2); without it, ``pairs_per_step`` random pairs (half
    same-class), as the ``cosine`` loss uses. ``time_limit``, ``max_steps``: see ``run_steps``."""
    torch.manual_seed(seed)
    stream = PairStream(labels, seed=seed)
    encoder.model.train()

    def step_loss(_step: int) -> torch.Tensor:
        if loss == "supcon":
            if not balanced:
                idx = np.unique(stream.batch(pairs_per_step)[:, :2])
            elif per_class > 2:
                idx = stream.class_groups(pairs_per_step, per_class)
            else:
                idx = stream.positive_pairs(pairs_per_step).ravel()
            emb = encoder.forward([texts[k] for k in idx])
            return supcon_loss(emb, torch.as_tensor(np.asarray(labels)[idx]), temperature)
        pairs = stream.batch(pairs_per_step)
        idx, inverse = np.unique(pairs[:, :2], return_inverse=True)
        emb = encoder.forward([texts[k] for k in idx])
        a, b = emb[inverse.reshape(-1, 2)[:, 0]], emb[inverse.reshape(-1, 2)[:, 1]]
        return F.mse_loss((a * b).sum(-1), torch.as_tensor(pairs[:, 2], dtype=torch.float32))

    losses = run_steps([{"params": encoder.tunable_parameters(), "lr": lr}], steps, step_loss,
                       progress=progress, description="contrastive fine-tuning", time_limit=time_limit,
                       max_steps=max_steps)
    encoder.model.eval()
    return losses
