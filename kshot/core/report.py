"""The classification report every domain prints: accuracy and macro-F1 with 95 % bootstrap intervals,
precision / recall / F1 / support per class, the confusion matrix and, with a reject threshold, the
out-of-scope figures. ``kshot score`` (text), ``kshot image score`` and the episodic evaluations use it.

* intervals: percentile bootstrap over the test rows (``n_boot`` resamples, seeded: the same call gives
  the same interval);
* per class: scikit-learn's ``precision_recall_fscore_support``;
* the confusion matrix has rows = true label, columns = predicted label; ``plot_confusion`` draws it;
* true labels the model never saw are scored as errors and counted (``unseen``);
* with ``reject_below``, rows whose true label is the reject label are the out-of-scope ones: their
  recall, the precision of the rejections and the in-scope rows wrongly rejected are reported (``oos``).

Macro-F1 averages F1 over the labels that occur in the true labels (scikit-learn's ``f1_score`` with
``labels=`` those labels, ``average="macro"``), so a label only ever predicted adds no term.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import KshotError
from .io import atomic_write
from .stats import bootstrap_weights, percentile_interval


@dataclass
class Report:
    n: int
    accuracy: float
    accuracy_ci: tuple[float, float]
    macro_f1: float
    macro_f1_ci: tuple[float, float]
    labels: list  # row/column order of ``confusion`` and ``per_class``
    confusion: np.ndarray  # [len(labels), len(labels)] counts, rows = truth
    per_class: dict  # label -> {precision, recall, f1, support}
    unseen: dict  # true label the model does not know -> rows
    reject_below: float | None = None
    oos: dict | None = None
    n_boot: int = field(default=1000, repr=False)
    what: str = field(default="items", repr=False)  # "texts", "images": how ``str`` names the rows

    @property
    def n_unseen(self) -> int:
        return int(sum(self.unseen.values()))

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "accuracy_ci95": list(self.accuracy_ci),
            "macro_f1": self.macro_f1,
            "macro_f1_ci95": list(self.macro_f1_ci),
            "bootstrap_resamples": self.n_boot,
            "n_unseen_label_rows": self.n_unseen,
            "unseen_labels": {str(k): v for k, v in self.unseen.items()},
            "per_class": {str(k): v for k, v in self.per_class.items()},
            "labels": [str(x) for x in self.labels],
            "confusion": self.confusion.tolist(),
            "reject_below": self.reject_below,
            "out_of_scope": self.oos,
        }

    def __str__(self) -> str:
        lo, hi = self.accuracy_ci
        flo, fhi = self.macro_f1_ci
        out = (
            f"accuracy {100 * self.accuracy:.2f} % (95% CI {100 * lo:.2f}-{100 * hi:.2f}), macro-F1 "
            f"{100 * self.macro_f1:.2f} % (95% CI {100 * flo:.2f}-{100 * fhi:.2f}) on {self.n} {self.what}"
        )
        if self.unseen:
            out += f"; {self.n_unseen} with labels the model never saw, scored as errors"
        return out


def macro_f1_boot(
    truth: np.ndarray, pred: np.ndarray, n_labels: int, scored: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Macro-F1 over the label ids ``scored`` for each row of ``weights`` ([B, n] row multiplicities)."""
    hit = truth == pred
    out = np.empty(len(weights))
    for b, w in enumerate(weights):
        tp = np.bincount(truth[hit], weights=w[hit], minlength=n_labels)
        t = np.bincount(truth, weights=w, minlength=n_labels)
        p = np.bincount(pred, weights=w, minlength=n_labels)
        denom = t + p
        f1 = np.divide(2 * tp, denom, out=np.zeros(n_labels), where=denom > 0)
        present = scored[t[scored] > 0]
        out[b] = f1[present].mean() if len(present) else 0.0
    return out


def classification_report(
    truth: list,
    pred: list,
    classes: list,
    reject_below: float | None = None,
    reject_label="oos",
    n_boot: int = 1000,
    seed: int = 0,
    what: str = "items",
) -> Report:
    """Score predictions ``pred`` against ``truth`` for a model that knows ``classes`` (their order leads
    the report's label order). ``reject_below`` (the threshold the predictions were made with) turns on
    the out-of-scope figures for rows labelled ``reject_label``."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    truth, pred, classes = list(truth), list(pred), list(classes)
    if not truth:
        raise KshotError(f"the test set is empty; give at least one labelled {what.rstrip('s')}")
    if len(truth) != len(pred):
        raise KshotError(f"got {len(truth)} true labels but {len(pred)} predictions")
    known = {str(c): c for c in classes}
    truth = [y if y in classes else known.get(str(y), y) for y in truth]  # "3" matches class 3
    unseen: dict = {}
    for y in truth:
        if y not in classes and not (reject_below is not None and y == reject_label):
            unseen[y] = unseen.get(y, 0) + 1
    order = classes + sorted({*truth, *pred} - set(classes), key=str)
    index = {c: i for i, c in enumerate(order)}
    t = np.array([index[y] for y in truth])
    p = np.array([index[y] for y in pred])
    scored = np.unique(t)
    confusion = np.zeros((len(order), len(order)), dtype=np.int64)
    np.add.at(confusion, (t, p), 1)
    prec, rec, f1, sup = precision_recall_fscore_support(t, p, labels=np.arange(len(order)), zero_division=0)
    per_class = {
        c: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]), "support": int(sup[i])}
        for i, c in enumerate(order)
    }
    weights = bootstrap_weights(len(t), n_boot, seed)
    hit = (t == p).astype(float)
    result = Report(
        n=len(t),
        accuracy=float(hit.mean()),
        accuracy_ci=percentile_interval(weights @ hit / len(t)),
        macro_f1=float(f1_score(t, p, labels=scored, average="macro", zero_division=0)),
        macro_f1_ci=percentile_interval(macro_f1_boot(t, p, len(order), scored, weights)),
        labels=order,
        confusion=confusion,
        per_class=per_class,
        unseen=unseen,
        reject_below=reject_below,
        n_boot=n_boot,
        what=what,
    )
    if reject_below is not None:
        is_oos, rejected = t == index.get(reject_label, -1), p == index.get(reject_label, -1)
        inscope = ~is_oos
        result.oos = {
            "reject_label": reject_label,
            "out_of_scope_rows": int(is_oos.sum()),
            "rejected_rows": int(rejected.sum()),
            "oos_recall": float(rejected[is_oos].mean()) if is_oos.any() else None,
            "oos_precision": float(is_oos[rejected].mean()) if rejected.any() else None,
            "in_scope_accuracy": float((t == p)[inscope].mean()) if inscope.any() else None,
            "in_scope_rejected": float(rejected[inscope].mean()) if inscope.any() else None,
        }
    return result


def per_class_scores(truth: np.ndarray, pred: np.ndarray, class_names) -> dict:
    """Precision, recall, F1 and support for each class id that occurs in ``truth`` (named by
    ``class_names[id]``): the per-class part of an episodic evaluation."""
    from sklearn.metrics import precision_recall_fscore_support

    labels = np.unique(truth)
    p, r, f, s = precision_recall_fscore_support(truth, pred, labels=labels, zero_division=0)
    return {
        class_names[c]: {"precision": float(pi), "recall": float(ri), "f1": float(fi), "support": int(si)}
        for c, pi, ri, fi, si in zip(labels, p, r, f, s)
    }


def plot_confusion(result: Report, path) -> None:
    """Write the confusion matrix of ``result`` to ``path`` as a PNG (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise KshotError("--plot needs matplotlib; install it with pip install 'kshot[plot]'") from None
    m = result.confusion
    size = min(30.0, 3 + 0.25 * len(m))
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(m / np.maximum(m.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(m))
    names = [str(x) for x in result.labels]
    ax.set_xticks(ticks, names, rotation=90, fontsize=max(4, 10 - len(m) // 20))
    ax.set_yticks(ticks, names, fontsize=max(4, 10 - len(m) // 20))
    if len(m) <= 20:
        for i in range(len(m)):
            for j in range(len(m)):
                if m[i, j]:
                    ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {100 * result.accuracy:.1f} %, macro-F1 {100 * result.macro_f1:.1f} % (n={result.n})")
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
