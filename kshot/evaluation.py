"""Scoring a method on fixed episodes: mean accuracy with its 95% confidence interval."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .allocator import tune_allocator
from .data.base import LabeledData
from .episodes import EpisodeSampler
from .progress import progress_bar


def ci95(values) -> float:
    """Half-width of the 95% confidence interval of the mean: 1.96 * std / sqrt(n) (sample std)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return float("nan")
    return float(1.96 * values.std(ddof=1) / math.sqrt(len(values)))


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
        values = np.asarray(values, dtype=np.float64)
        return cls(float(values.mean()), ci95(values), len(values), values, **kw)

    def __str__(self) -> str:
        return (f"{100 * self.accuracy:.2f} ± {100 * self.ci95:.2f} % "
                f"({self.way}-way {self.shot}-shot, {self.n} episodes)")

    def to_dict(self, values: bool = False) -> dict:
        d = {"accuracy": self.accuracy, "ci95": self.ci95, "episodes": self.n, "way": self.way,
             "shot": self.shot, "query": self.query, "seed": self.seed}
        if self.per_class is not None:
            d["per_class"] = self.per_class
        if values:
            d["values"] = self.values.tolist()
        return d


def evaluate(method, data: LabeledData, way: int = 5, shot: int = 1, query: int = 15,
             episodes: int = 1000, seed: int = 0, per_class: bool = False, device="cpu",
             batch: int = 1, progress: bool = False) -> Score:
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
        score.per_class = per_class_report(torch.cat(truth).numpy(), torch.cat(pred).numpy(),
                                           data.class_names)
    return score


def per_class_report(truth: np.ndarray, pred: np.ndarray, class_names) -> dict:
    """Precision, recall, F1 and support for each class that occurs in ``truth``."""
    from sklearn.metrics import precision_recall_fscore_support

    labels = np.unique(truth)
    p, r, f, s = precision_recall_fscore_support(truth, pred, labels=labels, zero_division=0)
    return {class_names[c]: {"precision": float(pi), "recall": float(ri), "f1": float(fi),
                             "support": int(si)}
            for c, pi, ri, fi, si in zip(labels, p, r, f, s)}
