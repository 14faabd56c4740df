"""Episodic training of a sequence backbone (BiLSTM, BiGRU or Transformer over the frozen encoder's word
vectors) with a prototypical loss over tags, then nearest prototype (as ``proto``) in its output space.

Episodes come from ``source`` (sentences with their own entity types, e.g. another corpus: Few-NERD-style
N-way K~2K episodes) when the tagger is given one, else from the support set itself: each episode splits
the support sentences at random into a support and a query half. The backbone is a residual map that
starts as the identity (kshot/tagging/backbones.py), so few steps cannot stray far from ``proto``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...core.loop import run_steps
from ...core.prototypes import class_means, squared_distances
from ..backbones import SequenceBackbone
from .base import TagMethod, split_rows


def proto_loss(support: list[torch.Tensor], s_labels, query: list[torch.Tensor], q_labels, n_classes: int):
    """Cross-entropy of query words against the support's tag prototypes (tags absent from the support
    half are left out of both)."""
    X, y = torch.cat(support), torch.cat(s_labels)
    present = torch.bincount(y, minlength=n_classes) > 0
    protos = class_means(X, y, n_classes)
    Q, qy = torch.cat(query), torch.cat(q_labels)
    keep = present[qy]
    logits = -squared_distances(Q[keep], protos)
    logits = logits.masked_fill(~present, float("-inf"))
    return F.cross_entropy(logits, qy[keep])


class EpisodicTagger(TagMethod):
    name = "episodic"

    def __init__(
        self,
        backbone: str = "lstm",
        hidden: int = 128,
        steps: int = 100,
        lr: float = 1e-3,
        scale: float = 5.0,
        seed: int = 0,
    ):
        super().__init__(backbone=backbone, hidden=hidden, steps=steps, lr=lr, scale=scale, seed=seed)

    def _vectors(self, encoder, sentences):
        return [torch.from_numpy(v) for v in encoder.encode(sentences)]

    def episodes(self, sentences, labels, rng):
        """Support-set episodes: random halves of the support sentences (all its classes)."""
        n = len(sentences)
        while True:
            perm = rng.permutation(n)
            half = max(1, n // 2)
            yield perm[:half], (perm[half:] if n > 1 else perm[:half]), None

    def fit(self, encoder, sentences, labels, n_classes, source=None):
        p = self.params
        torch.manual_seed(p["seed"])
        rng = np.random.default_rng(p["seed"])
        self.net = SequenceBackbone(p["backbone"], encoder.dim, p["hidden"])
        if source is not None:  # (sentences, labels, n_classes, episode generator) of another corpus
            src_sents, src_labels, src_classes, eps = source
        else:
            eps = self.episodes(sentences, labels, rng)
            src_sents, src_labels, src_classes = sentences, labels, n_classes
        vectors = self._vectors(encoder, src_sents)
        gold = [torch.as_tensor(y).long() for y in src_labels]
        episodes = iter(eps)

        def step_loss(step):
            s_idx, q_idx, classes = next(episodes)
            out = self.net.encode([vectors[i] for i in list(s_idx) + list(q_idx)])
            y = [gold[i] for i in list(s_idx) + list(q_idx)]
            if classes is not None:  # an N-way episode: the other types are O
                keep = torch.zeros(src_classes, dtype=torch.bool)
                keep[classes] = True
                y = [torch.where(keep[t], t, 0) for t in y]
            k = len(s_idx)
            return proto_loss(out[:k], y[:k], out[k:], y[k:], src_classes)

        self.net.train()
        run_steps(
            [{"params": list(self.net.parameters()), "lr": p["lr"]}],
            p["steps"],
            step_loss,
            optimizer="adam",
            schedule="constant",
            clip=None,
            description="episodic training",
            progress=getattr(self, "progress", False),
        )
        self.net.eval()
        with torch.no_grad():
            X = torch.cat(self.net.encode(self._vectors(encoder, sentences)))
        self.prototypes = class_means(X, torch.from_numpy(np.concatenate(labels)).long(), n_classes)
        return self

    def scores(self, encoder, sentences):
        with torch.no_grad():
            X = torch.cat(self.net.encode(self._vectors(encoder, sentences)))
        logits = -self.params["scale"] * squared_distances(X, self.prototypes)
        return split_rows(logits.log_softmax(-1), sentences)

    def state(self):
        return {"prototypes": self.prototypes, **{f"net.{k}": v for k, v in self.net.state_dict().items()}}

    def load_state(self, state, encoder=None):
        self.prototypes = state["prototypes"]
        self.net = SequenceBackbone(self.params["backbone"], self.prototypes.shape[1], self.params["hidden"])
        self.net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
        self.net.eval()
        return self
