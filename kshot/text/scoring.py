"""Score a fitted text classifier on labelled texts: ``kshot.text.score(clf, texts, labels)`` (the
``kshot score`` command). The report itself (intervals, per-class figures, confusion matrix, out-of-scope
figures) is ``kshot.core.report``'s, shared with the image classifier."""

from __future__ import annotations

from ..core.errors import KshotError
from ..core.report import Report, classification_report
from .classifier import check_texts


def score(clf, texts, labels, reject_below: float | None = None, n_boot: int = 1000, seed: int = 0) -> Report:
    """Score the fitted ``clf`` (a ``FewShotClassifier``) on ``texts`` with their true ``labels``."""
    texts = check_texts(texts)
    labels = list(labels)
    if not texts:
        raise KshotError("the test set is empty; give at least one labelled text")
    if len(texts) != len(labels):
        raise KshotError(f"got {len(texts)} texts but {len(labels)} labels")
    if reject_below is not None and not 0 <= reject_below <= 1:
        raise KshotError(f"reject_below must be a probability from 0 to 1, got {reject_below!r}")
    pred = list(clf.predict(texts, reject_below=reject_below))
    return classification_report(
        labels,
        pred,
        list(clf.classes_),
        reject_below=reject_below,
        reject_label=getattr(clf, "reject_label", "oos"),
        n_boot=n_boot,
        seed=seed,
        what="texts",
    )
