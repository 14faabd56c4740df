"""``melu``: MeLU-style meta-learning (Lee et al., KDD 2019) on kshot's shared inner loop.

A rating head ``base_i + MLP([item embedding, user embedding])`` (embeddings of side features, see
``neural.Embedder``). MAML: the inner loop (``kshot.core.adapt.adapt``, the same torch.func
loop as the image methods) adapts the decision layers (``fc1``, ``fc2``, ``out``) on a task's support
ratings by ``inner_steps`` steps of masked MSE (padded supports: the mask zeroes the padding, so K = 0
adapts nothing); the outer loop trains everything, the embeddings included, on the query MSE through the
inner steps (second order unless ``first_order``: nothing is detached or reloaded, unlike MeLU's code).
Tasks of a meta-batch run through ``torch.func.vmap``. The test-time steps and step size are tuned on
the validation users.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad, vmap

from ...core.adapt import adapt
from .neural import Embedder, NeuralMethod, masked_mse

DECISION = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "out.weight", "out.bias")


class MeLUNet(nn.Module):
    def __init__(self, item_features, user_dim, base, known, emb, hidden):
        super().__init__()
        self.embed = Embedder(item_features, user_dim, base, known, emb)
        self.fc1 = nn.Linear(2 * emb, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def rate(self, p: dict, items: torch.Tensor, uf: torch.Tensor) -> torch.Tensor:
        """Predicted ratings of ``items`` for a user with features ``uf``, weights from ``p``."""
        e_i = self.embed.items(p, items)
        e_u = self.embed.user(p, uf).expand(e_i.shape[0], -1)
        h = F.relu(F.linear(torch.cat([e_i, e_u], -1), p["fc1.weight"], p["fc1.bias"]))
        h = F.relu(F.linear(h, p["fc2.weight"], p["fc2.bias"]))
        return self.embed.base[items] + F.linear(h, p["out.weight"], p["out.bias"])[..., 0]


class MeLU(NeuralMethod):
    name = "melu"
    grid = {"test_steps": [2, 1, 3, 5], "test_lr": [0.05, 0.02, 0.1, 0.2]}
    inner_steps, inner_lr, first_order = 2, 0.05, False

    def build(self, item_features, user_dim, base, known):
        return MeLUNet(item_features, user_dim, base, known, self.emb, self.hidden)

    def adapted(self, params, s_i, s_r, s_m, uf, steps, lr, first_order):
        """``params`` after ``steps`` inner steps on the support ratings (decision layers only)."""
        loss = lambda p, i, r, m: masked_mse(self.net.rate(p, i, uf), r, m)  # noqa: E731
        return adapt(loss, params, DECISION, dict.fromkeys(DECISION, lr), steps, first_order, s_i, s_r, s_m)

    def task_loss(self, params, s_i, s_r, s_m, q_i, q_r, q_m, uf):
        fast = self.adapted(params, s_i, s_r, s_m, uf, self.inner_steps, self.inner_lr, self.first_order)
        return masked_mse(self.net.rate(fast, q_i, uf), q_r, q_m)

    def meta_gradients(self, batch) -> tuple[dict, torch.Tensor]:
        """(meta-gradient of the mean query loss over the batch's tasks, per-task query losses)."""
        params = {n: p.detach() for n, p in self.net.named_parameters()}
        fn = grad(lambda p, *task: (lambda loss: (loss, loss.detach()))(self.task_loss(p, *task)), has_aux=True)
        grads, losses = vmap(fn, in_dims=(None,) + (0,) * len(batch))(params, *batch)
        return {n: g.mean(0) for n, g in grads.items()}, losses

    def batch_loss(self, batch):
        grads, losses = self.meta_gradients(batch)
        surrogate = sum((p * grads[n]).sum() for n, p in self.net.named_parameters())
        return losses.mean() + surrogate - surrogate.detach()

    def predict_tensors(self, params, s_i, s_r, s_m, uf):
        fast = self.adapted(params, s_i, s_r, s_m, uf, self.params["test_steps"], self.params["test_lr"], True)
        return self.net.rate(fast, torch.arange(self.n_items), uf)
