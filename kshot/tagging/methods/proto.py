"""Nearest prototype per tag (ProtoBERT, Fritzler et al. 2019; Few-NERD's baseline): each tag's
prototype is the mean vector of its support words; a word's log-probabilities are the softmax of
``-scale x squared distance`` (the class-mean and distance helpers of the image ProtoNet)."""

from __future__ import annotations

from ...core.prototypes import class_means, squared_distances
from .base import TagMethod, split_rows, token_matrix


class ProtoTagger(TagMethod):
    name = "proto"

    def __init__(self, scale: float = 5.0):
        super().__init__(scale=scale)

    def fit(self, encoder, sentences, labels, n_classes):
        X, y = token_matrix(encoder, sentences, labels)
        self.prototypes = class_means(X, y, n_classes)
        return self

    def scores(self, encoder, sentences):
        X = token_matrix(encoder, sentences)
        logits = -self.params["scale"] * squared_distances(X, self.prototypes)
        return split_rows(logits.log_softmax(-1), sentences)
