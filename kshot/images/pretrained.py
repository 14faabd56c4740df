"""Episodic evaluation of a pretrained network on an image data set (``kshot image eval --pretrained``).

The episodes are the ones ``kshot.images.evaluation.evaluate`` draws (``EpisodeSampler`` with the same labels,
way, shot, query and seed), so a trained run and the pretrained network are scored on the same tasks. The
frozen features of every image the episodes use are computed once (a data set's items, ``[N, C, h, w]``
in 0..1, become RGB crops of ``image_size``; ``invert`` for white-on-black sets), then each method runs on
each episode:

* ``prototype``: nearest class mean by cosine (the classifier's ``prototype``);
* ``logistic``: the classifier's logistic head on unit-norm features (``C``);
* ``sklearn``: the recipe people write by hand, scikit-learn's ``LogisticRegression()`` with its defaults on
  the raw features (a baseline);
* ``finetune``: the classifier's fine-tuning (kshot/images/finetune.py: the last blocks on the support
  images, augmented) and then its logistic head, per episode (slow: ``steps`` training steps an episode);
* ``auto``: what ``FewShotImageClassifier(method="auto")`` would choose for the episode's support set.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import KshotError, check_choice
from ..core.heads import LogisticHead, PrototypeHead
from ..core.progress import progress_bar
from ..data.base import LabeledData
from .classifier import auto_plan
from .episodes import EpisodeSampler
from .evaluation import Score
from .features import ImageEncoder
from .finetune import finetune

METHODS = ("prototype", "logistic", "sklearn", "finetune", "auto")


def item_crops(items: torch.Tensor, size: int, invert: bool = False) -> np.ndarray:
    """Data set items ``[N, 1|3, h, w]`` in 0..1 -> uint8 RGB crops ``[N, size, size, 3]``."""
    x = items.float() * 255.0
    if invert:
        x = 255.0 - x
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _unit(X: np.ndarray) -> torch.Tensor:
    return F.normalize(torch.as_tensor(X, dtype=torch.float32), dim=1)


def _accuracy(proba: torch.Tensor, y: np.ndarray) -> float:
    return float((proba.argmax(1).numpy() == y).mean())


def evaluate_pretrained(
    data: LabeledData,
    backbone: str = "efficientnet-lite0",
    methods=("prototype", "logistic"),
    way: int = 5,
    shot: int = 1,
    query: int = 15,
    episodes: int = 100,
    seed: int = 0,
    image_size: int | None = None,
    invert: bool = False,
    C: float = 10.0,
    steps: int = 60,
    tune_blocks: int = 2,
    lr: float = 1e-3,
    time_budget: float = 120.0,
    device: str = "cpu",
    progress: bool = False,
    encoder: ImageEncoder | None = None,
    features: dict | None = None,
) -> tuple[dict[str, Score], dict[str, int]]:
    """Accuracy of each of ``methods`` on the same ``episodes`` fixed episodes of ``data``, and how often
    ``auto`` chose each method.

    ``features`` (index -> feature vector) is filled with the frozen features it computes and reused when
    given (several shots share them); ``encoder`` likewise."""
    for m in methods:
        check_choice("method", m, METHODS)
    if not isinstance(data.items, torch.Tensor) or data.items.dim() != 4:
        raise KshotError(f"{data.name}: the pretrained path needs image items [N, C, H, W]")
    sampler = EpisodeSampler(data.labels, way, shot, query, seed=seed)
    encoder = encoder or ImageEncoder(backbone, device=device, image_size=image_size)
    size = encoder.image_size
    index = [sampler.index(i) for i in range(episodes)]
    features = {} if features is None else features
    needed = sorted(set(np.concatenate([np.concatenate([e.support, e.query]) for e in index]).tolist()) - set(features))
    with progress_bar(len(needed), "embedding images", enabled=progress and bool(needed)) as advance:
        for start in range(0, len(needed), 64):
            part = needed[start : start + 64]
            for i, f in zip(part, encoder.forward(item_crops(data.items[part], size, invert))):
                features[i] = f
            advance(len(part))
    values: dict[str, list] = {m: [] for m in methods}
    chosen: dict[str, int] = {}
    with progress_bar(episodes, "episodes", enabled=progress) as advance:
        for i, e in enumerate(index):
            ys, yq = np.repeat(np.arange(way), shot), np.repeat(np.arange(way), query)
            Zs = np.stack([features[j] for j in e.support])
            Zq = np.stack([features[j] for j in e.query])
            done: dict[str, float] = {}
            for m in sorted(methods, key=lambda m: m == "auto"):  # auto last: it reuses what it chose
                plan = m
                if m == "auto":
                    plan, _ = auto_plan(ys, way, encoder.seconds_per_image(), 0.0, time_budget, steps)
                    chosen[plan] = chosen.get(plan, 0) + 1
                    if plan in done:
                        values[m].append(done[plan])
                        continue
                if plan == "prototype":
                    acc = _accuracy(PrototypeHead().add(_unit(Zs), ys, way).proba(_unit(Zq)), yq)
                elif plan == "logistic":
                    acc = _accuracy(LogisticHead(C=C).add(_unit(Zs), ys, way).proba(_unit(Zq)), yq)
                elif plan == "sklearn":
                    from sklearn.linear_model import LogisticRegression

                    acc = float((LogisticRegression().fit(Zs, ys).predict(Zq) == yq).mean())
                else:
                    tuned = encoder.trainable()
                    views = item_crops(data.items[e.support], round(size * 8 / 7), invert)
                    finetune(tuned, views, ys, way, Zs, steps=steps, tune_blocks=tune_blocks, lr=lr, seed=seed + i)
                    Ts = tuned.forward(item_crops(data.items[e.support], size, invert))
                    Tq = tuned.forward(item_crops(data.items[e.query], size, invert))
                    acc = _accuracy(LogisticHead(C=C).add(_unit(Ts), ys, way).proba(_unit(Tq)), yq)
                values[m].append(acc)
                done[m] = acc
            advance(1)
    return {m: Score.from_values(v, way=way, shot=shot, query=query, seed=seed) for m, v in values.items()}, chosen
