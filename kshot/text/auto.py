"""The default recipe (``method="auto"``): chosen from the data within a time budget.

1. Label names that are words ("card_arrival", "positive") become one more training example each
   ("This text is about card arrival"); digits or codes ("0", "A12") do not. A label set counts as
   words when at least 90 % of its names contain a word of two letters or more (CLINC150's "w2", the
   tax form, is one code among 150 words).
2. The encoder's speed is measured on up to 32 training texts (after a warm-up batch of 4). Contrastive fine-tuning (supervised contrastive loss, kshot/text/contrastive.py)
   runs when at least ``MIN_STEPS`` steps fit in the budget after re-encoding the training texts:
   - batches: up to ``CLASSES_PER_STEP`` (16) classes per step and ``max(2, BATCH_TEXTS // classes)``
     (``BATCH_TEXTS`` = 32) texts of each, so a binary task
     trains on 32 texts per step (every same-class pair of the batch is a positive), a 77-class one on
     16 classes x 2; with more classes than fit in a step, a step's classes are a random anchor class and
     (``HARD_SHARE`` of the rest) its nearest classes in the encoder's current space, tracked from the
     steps' own embeddings (kshot/text/contrastive.py), so that confusable intents meet in a batch;
   - steps: 20 passes over the training texts (at least 40, at most 2,000), cut to what fits in
     ``FINETUNE_SHARE`` of the budget at the speed measured on the first steps (the learning-rate
     schedule is stretched to the budget actually used; during the warm-up the plan may grow back
     towards the 20 passes when the steps run faster than the probe said); learning rate ``LR`` (1e-4: with tens of
     steps rather than SetFit's hundreds, 2e-5 barely moves the encoder);
   otherwise (tiny budget, slow machine or very large training set) the encoder stays frozen.
   The training texts are encoded once, by the final encoder: only the speed probe runs before.
   After fine-tuning, the encoder's weights become ``BLEND`` x the fine-tuned + (1 - ``BLEND``) x the
   pre-trained ones (weight-space ensembling, WiSE-FT): one encoder, so no cost at prediction time, and on
   the validation draws of the development suite it beat the fine-tuned weights alone
   (docs/notes/2026-11-results-log.md).
3. The logistic head's regularisation C is chosen by stratified cross-validation on the training texts'
   embeddings (``C_GRID``; label examples always on the training side; ties go to the C nearest 10).

``time_budget`` is for fitting: encoding, fine-tuning, re-encoding and the head. The plan leaves 15 % of it
for the head, whose cross-validation of C grows with classes x texts: with many classes a fit overruns the
budget by about 10 % (150 classes x 10 texts: the cross-validation takes ~35 s at one thread, 0.1 s for a
binary task). The chosen recipe is ``FewShotClassifier.recipe_``.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import KshotError
from ..core.heads import LogisticHead

C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
MIN_STEPS = 10
FINETUNE_SHARE = 0.85
TRAIN_COST = 3.0  # a training step costs about 3 forward passes (backward included)
DEFAULT_BUDGET = 120.0
LR = 1e-4  # a short step budget needs a larger step than SetFit's 2e-5
BLEND = 0.7  # fine-tuned share of the final encoder weights (the rest: the pre-trained ones)
PASSES = 20  # step target: passes over the training texts ...
STEP_RANGE = (40, 2000)  # ... but at least 40 steps and at most 2,000
CLASSES_PER_STEP = 16  # a step's batch: up to this many classes ...
BATCH_TEXTS = 32  # ... and max(2, BATCH_TEXTS // classes) texts of each
HARD_SHARE = 1.0  # share of a step's classes drawn from the nearest neighbours of an anchor class
LABEL_WORDS_SHARE = 0.9  # label names become examples when at least this share of them holds a word
_UNITS = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}


def parse_duration(value, name: str = "time_budget") -> float:
    """Seconds from a positive number or a string like ``90``, ``90s``, ``2m``, ``1.5h``."""
    seconds = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|sec|m|min|h)?\s*", value.lower())
        if match:
            seconds = float(match.group(1)) * _UNITS[match.group(2) or ""]
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise KshotError(f"{name} must be a positive duration in seconds (e.g. 120, 90s, 2m), got {value!r}")
    return seconds


def labels_are_words(classes, share: float | None = None) -> bool:
    share = LABEL_WORDS_SHARE if share is None else share
    classes = list(classes)
    words = sum(1 for c in classes if isinstance(c, str) and re.search(r"[^\W\d_]{2,}", c))
    return bool(classes) and words >= share * len(classes)


@dataclass
class Recipe:
    finetune: bool
    steps: int = 0
    step_target: int = 0  # the passes' step count, before the budget cut it to ``steps``
    classes_per_step: int = 0
    per_class: int = 0
    label_examples: bool = False
    blend: float = field(default_factory=lambda: BLEND)  # read when a recipe is made (patchable)
    C: float = 10.0
    why: str = ""
    steps_run: int | None = None  # set after fine-tuning: the steps the time limit allowed

    def describe(self) -> str:
        count = f"up to {self.steps}" if self.steps_run is None else f"{self.steps_run}"
        body = (
            f"contrastive fine-tuning, {count} steps of {self.classes_per_step} classes x "
            f"{self.per_class} texts, weights {self.blend:.0%} fine-tuned + {1 - self.blend:.0%} pre-trained"
            if self.finetune
            else "frozen encoder"
        )
        extra = ", label names as examples" if self.label_examples else ""
        return f"{body}{extra}, logistic head (C by cross-validation){'; ' + self.why if self.why else ''}"


def plan(
    n_texts: int, n_classes: int, budget: float, seconds_per_text: float, elapsed: float, n_windows: int | None = None
) -> tuple[Recipe, float]:
    """The recipe for ``n_texts`` training texts in ``n_classes`` classes; returns it and the seconds that
    fine-tuning may take. ``seconds_per_text``: one window's forward pass (what a training step reads of each
    text); ``n_windows``: the windows that re-encoding the training texts reads (default: one per text)."""
    classes_per_step = min(CLASSES_PER_STEP, n_classes)
    per_class = max(2, BATCH_TEXTS // n_classes)
    batch = min(n_texts, classes_per_step * per_class)
    target = int(np.clip(PASSES * n_texts / batch, *STEP_RANGE))
    reencode = (n_texts if n_windows is None else n_windows) * seconds_per_text
    available = FINETUNE_SHARE * budget - elapsed - reencode
    affordable = int(available / (TRAIN_COST * batch * seconds_per_text)) if available > 0 else 0
    if affordable < MIN_STEPS:
        return Recipe(False, why=f"fine-tuning would fit only {max(affordable, 0)} steps in the budget"), 0.0
    return Recipe(True, min(target, affordable), target, classes_per_step, per_class), available


def cv_accuracy(X: np.ndarray, y: np.ndarray, n_classes: int, C: float, folds: list, extra) -> float:
    hits = 0
    for held in folds:
        train = np.setdiff1d(np.arange(len(y)), held)
        Xt, yt = np.concatenate([X[train], extra[0]]), np.concatenate([y[train], extra[1]])
        head = LogisticHead(C=C, scale=10.0).add(Xt, yt, n_classes)
        hits += int((head.logits(X[held]).argmax(1).numpy() == y[held]).sum())
    return hits / len(y)


def choose_C(X: np.ndarray, y: np.ndarray, n_classes: int, extra=None, seed: int = 0, n_folds: int = 5) -> float:
    """C of ``C_GRID`` with the best stratified k-fold accuracy (k = min(5, smallest class)); ties and
    single-example classes: the C nearest 10."""
    extra = extra if extra is not None else (np.zeros((0, X.shape[1]), np.float32), np.zeros(0, np.int64))
    counts = np.bincount(y, minlength=n_classes)
    k = min(n_folds, int(counts[counts > 0].min()))
    if k < 2:
        return 10.0
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        fold_of[idx] = (np.arange(len(idx)) + rng.integers(k)) % k
    folds = [np.flatnonzero(fold_of == f) for f in range(k)]
    scores = {C: cv_accuracy(X, y, n_classes, C, folds, extra) for C in C_GRID}
    best = max(scores.values())
    return min((C for C, s in scores.items() if s >= best - 1e-9), key=lambda C: abs(math.log(C / 10.0)))


def seconds_per_text(encoder, texts: list[str]) -> float:
    """Forward seconds per text, one window each (a long text's first: what a training step reads), timed on
    up to 32 of ``texts`` after a small untimed warm-up batch."""
    encoder._encode_pieces(texts[:4])
    probe = texts[:32]
    start = time.perf_counter()
    encoder._encode_pieces(probe)
    return (time.perf_counter() - start) / len(probe)
