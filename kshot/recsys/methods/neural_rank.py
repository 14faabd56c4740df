"""What the neural rankers share (``gru``, ``sasrec``, ``melu_rank``): training on the warm users' prefixes for
top-N, with the same embeddings, loop and saved state as the rating networks (``neural``).

A training task is a warm user's first K ratings in time order (K uniform in 0..``max_shot``, padded with
a mask), exactly what a newcomer gives, and as targets the items that user liked later (rated >= the
positive rating; every later item on implicit data). The loss is the softmax cross-entropy of those
targets over the whole catalogue (the support items masked out), averaged over the targets: a listwise
ranking loss, no rating regression. Every network scores ``base_i + f(user, item)`` with ``base`` the
items' log popularity (fixed), so it starts as the popularity shelf. Item side features (genres, year)
enter every item embedding, user side features the K = 0 state: where the support is empty or thin
they are all the network has. Validation NDCG@10 (on the validation users) picks the best weights.
"""

from __future__ import annotations

import numpy as np
import torch

from ..protocol import default_positive
from .neural import NeuralMethod
from .ranker import BLENDS, Ranker


def masked_softmax_loss(logits: torch.Tensor, targets: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """Mean over tasks with targets of the mean -log softmax of their targets; ``support`` (0/1, like
    ``targets``, [tasks, items]) items are left out of the softmax."""
    logits = logits.masked_fill(support > 0, float("-inf"))
    logp = torch.log_softmax(logits, -1).masked_fill(support > 0, 0.0)
    n = targets.sum(-1)
    per_task = -(logp * targets).sum(-1) / n.clamp(min=1.0)
    has = (n > 0).float()
    return (per_task * has).sum() / has.sum().clamp(min=1.0)


class NeuralRanker(Ranker, NeuralMethod):
    """Base of the neural rankers: ``build`` returns an ``nn.Module`` with an ``embed`` Embedder and
    ``logits(params, s_i, s_r, s_m, uf)`` -> [tasks, items]."""

    grid = {"blend": BLENDS}
    train_steps, meta_batch, lr, emb, hidden, eval_every = 600, 64, 2e-3, 64, 64, 100

    def _fit_ranker(self, train):
        torch.manual_seed(self.seed)
        counts = self.arrays_["prior"]
        known = counts > 0
        self.dims_ = {"user_dim": int(train.user_features.shape[1])}
        self.net = self.build(train.item_features, train.user_features.shape[1], np.log1p(counts), known)
        self.train_loop(train)

    def sample_tasks(self, rows, train, rng) -> tuple:
        """A batch of prefix tasks: (support items, ratings, mask [B, max_shot], targets, support as
        multi-hot [B, items], user features)."""
        s, b = self.max_shot, self.meta_batch
        s_i = np.zeros((b, s), np.int64)
        s_r, s_m = np.zeros((b, s), np.float32), np.zeros((b, s), np.float32)
        targets, support = np.zeros((b, self.n_items), np.float32), np.zeros((b, self.n_items), np.float32)
        positive = default_positive(train)
        users = rng.choice(len(rows), b)
        for t, u in enumerate(users):
            r = rows[u]
            k = int(rng.integers(0, min(s, len(r) - 1) + 1))
            later = r[k:] if positive is None else r[k:][train.ratings[r[k:]] >= positive]
            s_i[t, :k], s_r[t, :k], s_m[t, :k] = train.items[r[:k]], train.ratings[r[:k]], 1.0
            support[t, train.items[r[:k]]] = 1.0
            targets[t, train.items[later]] = 1.0
        uf = train.user_features[[train.users[rows[u][0]] for u in users]]
        return tuple(torch.from_numpy(x) for x in (s_i, s_r, s_m, targets, support, uf))

    def batch_loss(self, batch):
        s_i, s_r, s_m, targets, support, uf = batch
        params = dict(self.net.named_parameters())
        return masked_softmax_loss(self.net.logits(params, s_i, self.rating_input(s_r), s_m, uf), targets, support)

    def rating_input(self, ratings: torch.Tensor) -> torch.Tensor:
        """Ratings as the networks see them: -1 (lowest) .. 1 (highest); 1 on implicit data."""
        lo, hi = self.scale
        return (2 * (ratings - lo) / (hi - lo) - 1) if hi > lo else torch.ones_like(ratings)

    def raw_scores(self, items, ratings, user_features):
        params = {n: p.detach() for n, p in self.net.named_parameters()}
        s_i = torch.as_tensor(np.asarray(items, np.int64))[None]
        s_r = self.rating_input(torch.as_tensor(np.asarray(ratings, np.float32)))[None]
        uf = torch.as_tensor(np.asarray(user_features, np.float32))[None]
        self.net.eval()
        try:
            with torch.no_grad():
                out = self.net.logits(params, s_i, s_r, torch.ones_like(s_r), uf)[0]
        finally:
            self.net.train()
        return out.numpy().astype(np.float64)

    def state(self) -> dict:
        return {**self.arrays_, **NeuralMethod.state(self)}

    def load_state(self, arrays, n_items, scale):
        NeuralMethod.load_state(self, arrays, n_items, scale)
        self.arrays_ = {k: np.asarray(v) for k, v in arrays.items() if not k.startswith("net.")}
