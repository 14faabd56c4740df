"""What the neural cold-start methods share: feature embeddings over a fixed baseline, episodic tasks
sampled from the warm users, the training loop with early stopping on the validation users, and state.

Every network predicts ``mu + b_i + f(user, item)``: the damped bias model's item score (fitted on the
warm data, then fixed) plus a learned correction, so a network starts where the strongest simple baseline
is. Items are embedded from their side features plus a learned id embedding (zero for items without warm
ratings, so new items rely on their features); users from their side features.

Training tasks mimic the test: a warm user, K uniform in 0..``max_shot`` of its ratings as support
(padded to ``max_shot`` with a mask), ``n_query`` others as query (padded likewise).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...core.loop import run_steps
from ..protocol import N_QUERY
from .base import ColdStartMethod, check_setting, damped_biases


class Embedder(nn.Module):
    """Item and user embeddings from side features (+ item ids); the fixed baseline item scores."""

    def __init__(self, item_features, user_dim: int, base, known, emb: int):
        super().__init__()
        self.register_buffer("item_features", torch.as_tensor(item_features, dtype=torch.float32))
        self.register_buffer("base", torch.as_tensor(base, dtype=torch.float32))
        self.register_buffer("known", torch.as_tensor(known, dtype=torch.float32))
        self.item_id = nn.Embedding(len(self.base), emb)
        nn.init.normal_(self.item_id.weight, std=0.01)
        self.item_feat = nn.Linear(self.item_features.shape[1], emb)
        self.user_feat = nn.Linear(max(user_dim, 1), emb)

    def items(self, p: dict, idx: torch.Tensor) -> torch.Tensor:
        ids = F.embedding(idx, p["embed.item_id.weight"]) * self.known[idx, None]
        return ids + F.linear(self.item_features[idx], p["embed.item_feat.weight"], p["embed.item_feat.bias"])

    def user(self, p: dict, features: torch.Tensor) -> torch.Tensor:
        if features.shape[-1] == 0:
            features = features.new_zeros(features.shape[:-1] + (1,))
        return F.linear(features, p["embed.user_feat.weight"], p["embed.user_feat.bias"])


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the items where ``mask`` is 1 (0 when there are none)."""
    return (mask * (pred - target) ** 2).sum() / mask.sum().clamp(min=1.0)


class NeuralMethod(ColdStartMethod):
    """Base of ``melu``, ``attention`` and ``finetune``. Subclasses build ``self.net`` (an ``nn.Module`` with
    an ``embed`` Embedder) in ``build`` and write ``task_loss`` / ``predict_tensors`` as pure functions of
    the parameter dict."""

    train_steps, meta_batch, lr, emb, hidden, eval_every = 600, 32, 1e-3, 32, 64, 200
    max_shot, n_query = 10, N_QUERY
    SETTINGS = ("train_steps", "meta_batch", "lr", "emb", "hidden", "inner_steps", "inner_lr", "eval_every")

    def __init__(self, seed: int = 0, **params):
        own = {
            k: check_setting(self.name, k, params.pop(k), [getattr(self, k, 1)])  # positive, whole where the default is
            for k in list(params)
            if k in self.SETTINGS
        }
        super().__init__(seed, **params)
        for k, v in own.items():
            setattr(self, k, v)
        self.params.update(own)  # saved with the model, so load() rebuilds the same network

    @classmethod
    def accepts(cls, key):
        return key in cls.grid or key in cls.SETTINGS

    def fit(self, train, val=None, tune=True):
        self.val_tasks_ = val or []
        return super().fit(train, val, tune)

    # ---- building blocks ------------------------------------------------------------------------------

    def build(self, item_features, user_dim: int, base, known) -> nn.Module:
        raise NotImplementedError

    def _fit(self, train):
        torch.manual_seed(self.seed)
        mu, bi, _ = damped_biases(train, 2.0, 20.0)
        known = np.bincount(train.items, minlength=train.n_items) > 0
        self.dims_ = {"user_dim": int(train.user_features.shape[1])}
        self.net = self.build(train.item_features, train.user_features.shape[1], mu + bi, known)
        self.train_loop(train)

    def params_(self) -> dict:
        return dict(self.net.named_parameters())

    def sample_tasks(self, rows, train, rng) -> tuple:
        """A batch of padded training tasks (tensors with a leading task dimension)."""
        S, Q = self.max_shot, self.n_query
        out = {
            k: np.zeros((self.meta_batch, n), np.float32) for k, n in (("s_r", S), ("s_m", S), ("q_r", Q), ("q_m", Q))
        }
        s_i = np.zeros((self.meta_batch, S), np.int64)
        q_i = np.zeros((self.meta_batch, Q), np.int64)
        users = rng.choice(len(rows), self.meta_batch)
        for t, u in enumerate(users):
            r = rng.permutation(rows[u])
            k = int(rng.integers(0, min(S, len(r) - 1) + 1))
            s, q = r[:k], r[k : k + Q]
            s_i[t, :k], out["s_r"][t, :k], out["s_m"][t, :k] = train.items[s], train.ratings[s], 1
            q_i[t, : len(q)], out["q_r"][t, : len(q)], out["q_m"][t, : len(q)] = train.items[q], train.ratings[q], 1
        uf = train.user_features[[train.users[rows[u][0]] for u in users]]
        return (
            torch.from_numpy(s_i),
            torch.from_numpy(out["s_r"]),
            torch.from_numpy(out["s_m"]),
            torch.from_numpy(q_i),
            torch.from_numpy(out["q_r"]),
            torch.from_numpy(out["q_m"]),
            torch.from_numpy(uf),
        )

    def batch_loss(self, batch) -> torch.Tensor:
        """Mean query loss over a batch of tasks (differentiable w.r.t. the network's parameters)."""
        raise NotImplementedError

    def train_loop(self, train) -> None:
        rows = [r for r in train.user_rows() if len(r) >= 2]
        rng = np.random.default_rng(self.seed)
        self.history_ = []
        validate = (lambda: self.val_score(train, self.val_tasks_)) if self.val_tasks_ else None
        run_steps(
            [{"params": list(self.net.parameters()), "lr": self.lr}],
            self.train_steps,
            lambda step: self.batch_loss(self.sample_tasks(rows, train, rng)),
            optimizer="adam",
            schedule="constant",
            clip=None,
            validate=validate,
            every=self.eval_every,
            keep_best=self.net,
            history=self.history_,
            description=f"training {self.name}",
        )

    # ---- prediction -----------------------------------------------------------------------------------

    def predict_tensors(self, params, s_items, s_r, s_m, uf) -> torch.Tensor:
        """Predicted ratings of every catalogue item for one (unpadded) support set."""
        raise NotImplementedError

    def predict_items(self, items, ratings, user_features):
        s_items = torch.as_tensor(np.asarray(items, np.int64))
        s_r = torch.as_tensor(np.asarray(ratings, np.float32))
        uf = torch.as_tensor(np.asarray(user_features, np.float32))
        params = {n: p.detach() for n, p in self.net.named_parameters()}
        with torch.enable_grad():
            pred = self.predict_tensors(params, s_items, s_r, torch.ones_like(s_r), uf)
        return self.clip(pred.detach().numpy().astype(np.float64))

    # ---- state ----------------------------------------------------------------------------------------

    def state(self) -> dict:
        return {f"net.{k}": v for k, v in self.net.state_dict().items()}

    def load_state(self, arrays, n_items, scale):
        self.n_items, self.scale = n_items, tuple(scale)
        net = {k[4:]: torch.as_tensor(np.asarray(v)) for k, v in arrays.items() if k.startswith("net.")}
        self.net = self.build(
            net["embed.item_features"].numpy(),
            self.dims_["user_dim"],
            net["embed.base"].numpy(),
            net["embed.known"].numpy(),
        )
        self.net.load_state_dict(net)
