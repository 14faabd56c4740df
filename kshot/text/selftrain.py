"""Self-training on unlabelled texts: the head labels a pool of unlabelled texts, the most confident of
each class join the training set with that label, and the head is fitted again.

Round r of R takes the ``per_class * r / R`` most confident texts predicted as each class, so the
pseudo-labelled set grows as the head improves. The selection is per class: a class the head favours
cannot swallow the pool, and a rare class still gets its share. The labelled examples stay in every
round; pseudo-labels are recomputed from scratch each round (a text may change class).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..core.heads import Head


def most_confident(head: Head, U: np.ndarray, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``U`` and predicted labels of the ``per_class`` most confident texts of each class."""
    proba = torch.softmax(head.logits(U).double(), dim=1).numpy()
    pred, conf = proba.argmax(1), proba.max(1)
    chosen = []
    for c in range(proba.shape[1]):
        members = np.flatnonzero(pred == c)
        chosen.append(members[np.argsort(-conf[members], kind="stable")[:per_class]])
    idx = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
    return idx, pred[idx]


def self_train(
    make_head: Callable[[], Head],
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    U: np.ndarray,
    per_class: int = 80,
    rounds: int = 4,
    head: Head | None = None,
) -> tuple[Head, np.ndarray, np.ndarray]:
    """Fit ``make_head()`` on (``X``, ``y``) plus pseudo-labelled rows of ``U`` over ``rounds`` rounds.

    ``head`` is the head fitted on the labelled rows alone (fitted here when not given). Returns the
    final head and the chosen rows of ``U`` with their pseudo-labels."""
    if head is None:
        head = make_head().add(X, y, n_classes)
    idx, pseudo = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    for r in range(1, rounds + 1):
        idx, pseudo = most_confident(head, U, max(1, per_class * r // rounds))
        head = make_head().add(np.concatenate([X, U[idx]]), np.concatenate([y, pseudo]), n_classes)
    return head, idx, pseudo
