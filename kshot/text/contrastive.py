"""Contrastive fine-tuning of a sentence encoder on same/different-class pairs (the SetFit recipe).

Pairs come from a ``PairStream`` (memory independent of the number of possible pairs) for a fixed
step budget; each batch is tokenised with dynamic padding. Two losses:

* ``cosine``: SetFit's loss, squared error between cos(e_i, e_j) and 1 (same class) or 0;
* ``supcon``: supervised contrastive loss over every text of the batch (all B x B pairs, temperature
  ``temperature``), which gets more signal out of each forward pass.

With many classes a random batch rarely holds two classes that the encoder confuses, and those are the
negatives that teach most. ``hard_share`` > 0 makes that share of a batch's classes the nearest
neighbours of a random anchor class, nearest by a moving average of each class's embeddings that the
training steps themselves produce (``ClassMemory``: no extra forward pass; the steps are random until
every class with two or more examples has been in a batch).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..core.loop import run_steps
from .encoder import SentenceEncoder
from .pairs import PairStream

LOSSES = ("cosine", "supcon")


def supcon_loss(emb: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Khosla et al. (2020): mean log-probability of same-class partners among all others."""
    sim = emb @ emb.T / temperature
    self_mask = torch.eye(len(emb), dtype=torch.bool, device=emb.device)
    labels = labels.to(emb.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~self_mask
    has_pos = pos.any(1)
    per_anchor = -(log_prob.masked_fill(~pos, 0).sum(1) / pos.sum(1).clamp_min(1))
    return (per_anchor * has_pos).sum() / has_pos.sum().clamp_min(1)  # no boolean indexing (no data-dependent shape)


class ClassMemory:
    """Moving average (unit-norm; ``momentum`` is the old value's weight) of each class's embedding, updated
    from each step's detached embeddings; kept on the CPU, whatever the encoder's device."""

    def __init__(self, n_classes: int, momentum: float = 0.5):
        self.bank: torch.Tensor | None = None
        self.seen = np.zeros(n_classes, dtype=bool)
        self.momentum = momentum

    def update(self, emb: torch.Tensor, classes: np.ndarray) -> None:
        emb = emb.detach().float().cpu()
        if self.bank is None:
            self.bank = torch.zeros(len(self.seen), emb.shape[1])
        for c in np.unique(classes):
            mean = emb[torch.as_tensor(classes == c)].mean(0)
            old = self.bank[c] if self.seen[c] else mean
            self.bank[c] = F.normalize(self.momentum * old + (1 - self.momentum) * mean, dim=0)
            self.seen[c] = True

    def choose(self, candidates: np.ndarray, size: int, share: float, rng: np.random.Generator):
        """``size`` classes of ``candidates``: a random anchor, ``share`` of the rest drawn from the anchor's
        ``2 x`` that many nearest classes, the others at random; None (random batches) until every
        candidate has been seen or when all candidates fit in one batch."""
        if self.bank is None or len(candidates) <= size or not self.seen[candidates].all():
            return None
        anchor = int(rng.choice(candidates))
        others = candidates[candidates != anchor]
        n_hard = int(round(share * (size - 1)))
        near = others[np.argsort(-(self.bank[others] @ self.bank[anchor]).numpy(), kind="stable")]
        hard = rng.choice(near[: 2 * n_hard], size=n_hard, replace=False) if n_hard else near[:0]
        rest = rng.permutation(np.setdiff1d(others, hard))[: size - 1 - n_hard]
        return np.concatenate([[anchor], hard, rest]).astype(np.int64)


def contrastive_finetune(
    encoder: SentenceEncoder,
    texts: list[str],
    labels: np.ndarray,
    steps: int = 200,
    pairs_per_step: int = 16,
    lr: float = 2e-5,
    loss: str = "supcon",
    temperature: float = 0.05,
    seed: int = 0,
    progress: bool = False,
    balanced: bool = True,
    per_class: int = 2,
    time_limit: float | None = None,
    max_steps: int | None = None,
    hard_share: float = 0.0,
) -> list[float]:
    """Fine-tune ``encoder`` (a trainable copy) in place; returns the per-step losses.

    ``supcon`` with ``balanced`` (the default) draws ``pairs_per_step`` classes and two texts of each per
    step (``per_class`` texts of each when more than 2); without it, ``pairs_per_step`` random pairs (half
    same-class), as the ``cosine`` loss uses. ``hard_share``: see the module docstring (balanced
    ``supcon`` only). ``time_limit``, ``max_steps``: see ``run_steps``."""
    torch.manual_seed(seed)
    stream = PairStream(labels, seed=seed)
    memory = ClassMemory(len(stream.members)) if hard_share > 0 and loss == "supcon" and balanced else None
    encoder.model.train()

    def step_loss(_step: int) -> torch.Tensor:
        if loss == "supcon":
            if not balanced:
                idx = np.unique(stream.batch(pairs_per_step)[:, :2])
            else:
                classes = memory.choose(stream.multi, pairs_per_step, hard_share, stream.rng) if memory else None
                idx = (
                    stream.class_groups(pairs_per_step, per_class, classes)
                    if per_class > 2
                    else stream.positive_pairs(pairs_per_step, classes).ravel()
                )
            emb = encoder.forward([texts[k] for k in idx])
            if memory is not None:
                memory.update(emb, stream.class_of[idx])
            return supcon_loss(emb, torch.as_tensor(np.asarray(labels)[idx]), temperature)
        pairs = stream.batch(pairs_per_step)
        idx, inverse = np.unique(pairs[:, :2], return_inverse=True)
        emb = encoder.forward([texts[k] for k in idx])
        a, b = emb[inverse.reshape(-1, 2)[:, 0]], emb[inverse.reshape(-1, 2)[:, 1]]
        return F.mse_loss((a * b).sum(-1), torch.as_tensor(pairs[:, 2], dtype=torch.float32, device=emb.device))

    losses = run_steps(
        [{"params": encoder.tunable_parameters(), "lr": lr}],
        steps,
        step_loss,
        progress=progress,
        description="contrastive fine-tuning",
        time_limit=time_limit,
        max_steps=max_steps,
    )
    encoder.model.eval()
    return losses
