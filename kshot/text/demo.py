"""``kshot demo``: few-shot intent classification on a small built-in customer-service set, offline.

8 intents, 5 training and 10 test sentences each (kshot/text/demo_data/intents.json, written for
the project). Fits a FewShotClassifier with the packaged MiniLM encoder, prints a per-class report
and a few predictions.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

DEMO_FILE = Path(__file__).with_name("demo_data") / "intents.json"


def demo_data() -> tuple[list[str], list[str], list[str], list[str]]:
    """(train texts, train labels, test texts, test labels) of the built-in intent set."""
    intents = json.loads(DEMO_FILE.read_text())["intents"]
    split = {s: [(t, name) for name, d in intents.items() for t in d[s]] for s in ("train", "test")}
    return (
        [t for t, _ in split["train"]],
        [y for _, y in split["train"]],
        [t for t, _ in split["test"]],
        [y for _, y in split["test"]],
    )


def run_demo(method: str = "logistic", echo: Callable[[str], None] = print, encoder: str | None = None) -> float:
    """Fit, report per class, show predictions; returns the test accuracy."""
    from sklearn.metrics import classification_report

    from .classifier import FewShotClassifier
    from .encoder import DEFAULT_MODEL

    train_x, train_y, test_x, test_y = demo_data()
    n_classes = len(set(train_y))
    echo(
        f"Few-shot intent classification: {n_classes} intents, {len(train_x) // n_classes} examples each, "
        f"method {method!r}, encoder {encoder or DEFAULT_MODEL}"
    )
    start = time.perf_counter()
    clf = FewShotClassifier(encoder=encoder or DEFAULT_MODEL, method=method).fit(train_x, train_y)
    fit_s = time.perf_counter() - start
    preds, scores = clf.predict_with_scores(test_x)
    acc = sum(p == y for p, y in zip(preds, test_y)) / len(test_y)
    echo(f"fitted in {fit_s:.1f} s; test accuracy {100 * acc:.1f}% on {len(test_y)} held-out sentences\n")
    echo(classification_report(test_y, preds, digits=3, zero_division=0))
    echo("A few predictions (score = probability of the predicted intent):")
    for text, pred, score, truth in list(zip(test_x, preds, scores, test_y))[::15]:
        mark = "ok" if pred == truth else f"wrong, is {truth}"
        echo(f"  {text!r:58s} -> {pred} ({score:.2f}, {mark})")
    return acc
