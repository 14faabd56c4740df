"""Full fine-tuning of the encoder with a linear classification head (the classic BERT recipe).

The head reads the encoder's unit-norm sentence embedding times ``scale``; encoder and head are trained
jointly with cross-entropy on random mini-batches for a step budget (the head at a higher learning
rate). The trained head becomes a ``LogisticHead`` so prediction shares one code path.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..core.heads import LogisticHead
from ..core.loop import run_steps
from .encoder import SentenceEncoder


def full_finetune(
    encoder: SentenceEncoder,
    texts: list[str],
    labels: np.ndarray,
    n_classes: int,
    steps: int = 200,
    batch_size: int = 16,
    lr: float = 5e-5,
    head_lr: float = 1e-2,
    scale: float = 10.0,
    seed: int = 0,
    progress: bool = False,
) -> LogisticHead:
    """Train ``encoder`` (a trainable copy) in place and return the fitted head."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=np.int64)
    head = torch.nn.Linear(encoder.dim, n_classes, device=encoder.device)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    encoder.model.train()

    def step_loss(_step: int) -> torch.Tensor:
        idx = rng.choice(len(texts), size=min(batch_size, len(texts)), replace=False)
        logits = head(scale * encoder.forward([texts[i] for i in idx]))
        return F.cross_entropy(logits, torch.as_tensor(labels[idx], device=logits.device))

    run_steps(
        [{"params": encoder.tunable_parameters(), "lr": lr}, {"params": list(head.parameters()), "lr": head_lr}],
        steps,
        step_loss,
        progress=progress,
        description="fine-tuning",
    )
    encoder.model.eval()
    return LogisticHead(scale=scale).set_weights(head.weight, head.bias)
