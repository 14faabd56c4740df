"""StructShot (Yang & Katiyar 2020): NNShot's nearest-word distances as emissions, softened by a
temperature ``tau`` (log-softmax of ``-distance / tau``), decoded by Viterbi over the abstract
transitions estimated from the support set (kshot/tagging/decode.py)."""

from __future__ import annotations

from ..decode import abstract_transitions, viterbi
from .base import split_rows
from .nnshot import NNShot


class StructShot(NNShot):
    name = "structshot"

    def __init__(self, tau: float = 0.02, scale: float = 5.0):
        super().__init__(scale=scale)
        self.params["tau"] = tau

    def fit(self, encoder, sentences, labels, n_classes):
        super().fit(encoder, sentences, labels, n_classes)
        self.transitions, self.start = abstract_transitions(labels, n_classes)
        return self

    def emissions(self, encoder, sentences):
        logits = -self.distances(encoder, sentences) / self.params["tau"]
        return split_rows(logits.log_softmax(-1), sentences)

    def decode(self, scores):
        return [viterbi(s, self.transitions, self.start) for s in scores]

    def scores(self, encoder, sentences):
        return self.emissions(encoder, sentences)
