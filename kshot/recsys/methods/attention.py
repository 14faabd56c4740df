"""``attention``: a metric-based method in the spirit of matching networks. The new user is represented,
for each candidate item, by an attention-weighted combination of its embedded support items and their
rating residuals (attention = scaled dot product between the candidate's and each support item's
embeddings; padding masked; no support gives a zero vector). The rating head reads
[item embedding, user-feature embedding, that combination]. Trained episodically on sampled warm-user
tasks (no inner loop: adaptation is the attention itself)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import vmap

from .neural import Embedder, NeuralMethod, masked_mse


def _lin(p, name, x):
    return F.linear(x, p[f"{name}.weight"], p[f"{name}.bias"])


class AttentionNet(nn.Module):
    def __init__(self, item_features, user_dim, base, known, emb, hidden):
        super().__init__()
        self.embed = Embedder(item_features, user_dim, base, known, emb)
        self.key, self.query, self.value = nn.Linear(emb, emb), nn.Linear(emb, emb), nn.Linear(emb + 1, emb)
        self.fc1 = nn.Linear(3 * emb, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def rate(self, p, s_i, s_r, s_m, items, uf):
        e_s, e_q = self.embed.items(p, s_i), self.embed.items(p, items)
        residual = (s_r - self.embed.base[s_i])[:, None]
        att = _lin(p, "query", e_q) @ _lin(p, "key", e_s).T / math.sqrt(e_q.shape[-1])
        w = torch.exp(att - att.max(-1, keepdim=True).values.detach() if att.shape[-1] else att) * s_m
        w = w / (w.sum(-1, keepdim=True) + 1e-9)
        combo = w @ _lin(p, "value", torch.cat([e_s, residual], -1))
        e_u = self.embed.user(p, uf).expand(e_q.shape[0], -1)
        h = F.relu(_lin(p, "fc1", torch.cat([e_q, e_u, combo], -1)))
        h = F.relu(_lin(p, "fc2", h))
        return self.embed.base[items] + _lin(p, "out", h)[..., 0]


class Attention(NeuralMethod):
    name = "attention"
    train_steps = 1500

    def build(self, item_features, user_dim, base, known):
        return AttentionNet(item_features, user_dim, base, known, self.emb, self.hidden)

    def batch_loss(self, batch):
        params = dict(self.net.named_parameters())

        def task(s_i, s_r, s_m, q_i, q_r, q_m, uf):
            return masked_mse(self.net.rate(params, s_i, s_r, s_m, q_i, uf), q_r, q_m)

        return vmap(task)(*batch).mean()

    def predict_tensors(self, params, s_i, s_r, s_m, uf):
        with torch.no_grad():
            return self.net.rate(params, s_i, s_r, s_m, torch.arange(self.n_items), uf)
