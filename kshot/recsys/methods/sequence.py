"""The sequence rankers' network (``gru``, ``sasrec``): the new user's first K items in time order, each
embedded (id + side features, see ``neural.Embedder``) plus its rating, after a start token made from the
user's side features; an encoder reads them in order (causal), and its state after the last support item
scores every catalogue item by a dot product with the items' embeddings (tied), over the items' log
popularity. K = 0 reads the start token alone: user features and popularity. Trained on the warm users'
prefixes (``neural_rank``); a user with more items than the longest prefix is read from their latest ones."""

from __future__ import annotations

import torch
from torch import nn

from .neural import Embedder
from .neural_rank import NeuralRanker


class SequenceNet(nn.Module):
    def __init__(self, item_features, user_dim, base, known, emb, encoder: nn.Module, dropout: float = 0.2):
        super().__init__()
        self.embed = Embedder(item_features, user_dim, base, known, emb)
        self.rating = nn.Linear(1, emb)
        self.encoder = encoder
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(emb, emb)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """[tasks, 1 + K, emb] -> [tasks, 1 + K, emb], position t seeing only positions <= t."""
        raise NotImplementedError

    def logits(self, p, s_i, s_r, s_m, uf):
        start = self.embed.user(p, uf)[:, None]
        items = self.embed.items(p, s_i) + self.rating(s_r[..., None])
        h = self.encode(self.drop(torch.cat([start, items], 1)))
        state = h[torch.arange(h.shape[0]), s_m.sum(1).long()]
        catalogue = self.embed.items(p, torch.arange(len(self.embed.base)))
        return self.embed.base + self.out(state) @ catalogue.T


class SequenceRanker(NeuralRanker):
    """Base of ``gru`` and ``sasrec``: ``net_class()`` is the network (a ``SequenceNet``)."""

    def net_class(self):
        raise NotImplementedError

    def build(self, item_features, user_dim, base, known):
        return self.net_class()(item_features, user_dim, base, known, self.emb, self.max_shot)

    def raw_scores(self, items, ratings, user_features):
        """A user with more than ``max_shot`` items is read from their last ``max_shot`` (the network is
        trained on sequences of at most that many)."""
        return super().raw_scores(items[-self.max_shot :], ratings[-self.max_shot :], user_features)
