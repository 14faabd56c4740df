"""Scoring a method on fixed episodes: mean accuracy with its 95% confidence interval."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.allocator import tune_allocator
from ..core.progress import progress_bar
from ..core.report import per_class_scores
from ..core.stats import ci95
from ..data.base import LabeledData
from .episodes import EpisodeSampler


@dataclass
class Score:
    """Mean accuracy over ``n`` episodes, the 95% CI half-width and the per-episode values."""

    accuracy: float
    ci95: float
    n: int
    values: np.ndarray
    way: int
    shot: int
    query: int
    seed: int = 0
    per_class: dict | None = field(default=None, repr=False)

    @classmethod
    def from_values(cls, values, **kw) -> "Score":
        """A Score from per-episode accuracies (mean and 95% CI half-width computed here)."""
        values = np.asarray(values, dtype=np.float64)
        return cls(float(values.mean()), ci95(values), len(values), values, **kw)

    def __str__(self) -> str:
        return (
            f"{100 * self.accuracy:.2f} ± {100 * self.ci95:.2f} % ({self.way}-way {self.shot}-shot, {self.n} episodes)"
        )

    def to_dict(self, values: bool = False) -> dict:
        """The score as a JSON-able dict (``values=True`` adds the per-episode accuracies)."""
        d = {
            "accuracy": self.accuracy,
            "ci95": self.ci95,
            "episodes": self.n,
            "way": self.way,
            "shot": self.shot,
            "query": self.query,
            "seed": self.seed,
        }
        if self.per_class is not None:
            d["per_class"] = self.per_class
        if values:
            d["values"] = self.values.tolist()
        return d


def evaluate(
    method,
    data: LabeledData,
    way: int = 5,
    shot: int = 1,
    query: int = 15,
    episodes: int = 1000,
    seed: int = 0,
    per_class: bool = False,
    device="cpu",
    batch: int = 1,
    progress: bool = False,
) -> Score:
    """Accuracy of ``method`` on ``episodes`` fixed episodes of ``data``.

    The episodes depend only on (data labels, way, shot, query, seed), so every method is scored on
    the same ones. ``per_class=True`` adds precision / recall / F1 per original class.
    """
    sampler = EpisodeSampler(data.labels, way, shot, query, seed=seed)
    tune_allocator()
    was_training = method.training
    method.eval()
    values, truth, pred = [], [], []
    grad = torch.enable_grad() if method.adapts_with_gradients else torch.no_grad()
    with grad, progress_bar(episodes, "evaluating", enabled=progress) as advance:
        for ep in sampler.episodes(data.items, episodes, batch=batch):
            ep = ep.to(device)
            logits = method(ep.support, ep.support_labels, ep.query)
            hits = (logits.argmax(-1) == ep.query_labels).float()
            values.extend(hits.mean(-1).reshape(-1).tolist())
            if per_class:
                truth.append(ep.classes.gather(-1, ep.query_labels).reshape(-1).cpu())
                pred.append(ep.classes.gather(-1, logits.argmax(-1)).reshape(-1).cpu())
            advance(hits.shape[0] if hits.dim() > 1 else 1)
    method.train(was_training)
    score = Score.from_values(values, way=way, shot=shot, query=query, seed=seed)
    if per_class:
        score.per_class = per_class_scores(torch.cat(truth).numpy(), torch.cat(pred).numpy(), data.class_names)
    return score
