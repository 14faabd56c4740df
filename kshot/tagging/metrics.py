"""Entity-level precision, recall and F1: exact span and type, per type and micro-averaged (seqeval's
default CoNLL convention; seqeval computes them)."""

from __future__ import annotations

from ..core.errors import KshotError


def entity_scores(true_tags, pred_tags) -> dict:
    """``{"micro": {precision, recall, f1, support}, "types": {type: {...}}}`` over BIO (or IO) tags."""
    try:
        from seqeval.metrics import classification_report
    except ImportError:
        raise KshotError("tagging metrics need seqeval; install it with pip install 'kshot[tag]'") from None
    true_tags, pred_tags = [list(t) for t in true_tags], [list(p) for p in pred_tags]
    if len(true_tags) != len(pred_tags) or any(len(a) != len(b) for a, b in zip(true_tags, pred_tags)):
        raise KshotError("gold and predicted tags differ in number of sentences or tokens")
    report = classification_report(true_tags, pred_tags, output_dict=True, zero_division=0)

    def row(r):
        return {
            "precision": float(r["precision"]),
            "recall": float(r["recall"]),
            "f1": float(r["f1-score"]),
            "support": int(r["support"]),
        }

    types = {k: row(v) for k, v in report.items() if not k.endswith(" avg")}
    return {
        "micro": row(report["micro avg"])
        if "micro avg" in report
        else {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
        "types": types,
    }
