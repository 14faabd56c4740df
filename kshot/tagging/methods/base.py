"""What a tagging method is: fit on the support set's word vectors, then score each word of new sentences.

Labels are IO classes: 0 is ``O``, ``1..N`` the entity types (the tagger converts to and from BIO).
``fit(encoder, sentences, labels, n_classes)`` adapts; ``scores(encoder, sentences)`` returns one
``[len(sentence), n_classes]`` tensor of log-probabilities per sentence; ``decode`` turns them into
label sequences (argmax unless the method decodes with transitions). ``state()`` / ``load_state()``
carry the fitted tensors (safetensors) and ``params`` the JSON-able settings.
"""

from __future__ import annotations

import numpy as np
import torch


class TagMethod:
    name = ""
    #: True when the method reads the (cached) outputs of a frozen encoder
    frozen = True

    def __init__(self, **params):
        self.params = params

    def fit(self, encoder, sentences, labels, n_classes: int) -> "TagMethod":
        raise NotImplementedError

    def scores(self, encoder, sentences) -> list[torch.Tensor]:
        raise NotImplementedError

    def decode(self, scores: list[torch.Tensor]) -> list[np.ndarray]:
        return [s.argmax(-1).numpy() for s in scores]

    def tag(self, encoder, sentences, progress: bool = False):
        """(scores, entities) per sentence: the entities ``(start, end, class)`` are the runs of one class
        in the decoded IO path (a method that finds spans another way overrides this)."""
        scores = self.scores(encoder, sentences)
        return scores, [io_runs(path) for path in self.decode(scores)]

    def state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in vars(self).items() if torch.is_tensor(v)}

    def load_state(self, state: dict[str, torch.Tensor], encoder=None) -> "TagMethod":
        for k, v in state.items():
            setattr(self, k, v)
        return self


def io_runs(path) -> list[tuple[int, int, int]]:
    """``(start, end, class)`` of each run of one non-zero class in an IO label path."""
    out, start = [], 0
    path = [int(c) for c in path] + [0]
    for i in range(1, len(path) + 1):
        if i == len(path) or path[i] != path[start]:
            if path[start] != 0:
                out.append((start, i, path[start]))
            start = i
    return out


def token_matrix(encoder, sentences, labels=None):
    """All words of ``sentences`` as one ``[W, D]`` tensor (and their labels ``[W]``)."""
    X = torch.from_numpy(np.concatenate(encoder.encode(sentences)))
    if labels is None:
        return X
    return X, torch.from_numpy(np.concatenate(labels)).long()


def split_rows(X: torch.Tensor, sentences) -> list[torch.Tensor]:
    return list(X.split([len(s) for s in sentences]))
