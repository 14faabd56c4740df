"""``melu_rank``: MeLU (Lee et al., KDD 2019) trained for top-N instead of ratings, on kshot's shared inner loop.

The network is MeLU's (``melu.MeLUNet``: item and user side-feature embeddings into an MLP) scoring every
catalogue item over the items' log popularity. Inner loop (``kshot.core.adapt``, as ``melu``): a few steps
of gradient descent on the decision layers with a listwise ranking loss on the support, the softmax
cross-entropy over the catalogue of the user's support items (liked ones weigh 1, the others
``disliked``); K = 0 adapts nothing. Outer loop (second order, tasks under ``torch.func.vmap``): the same
loss on the items the warm user liked later, the support left out (``neural_rank``). The test-time steps
and step size are tuned on the validation users.
"""

from __future__ import annotations

import numpy as np
import torch

from ...core.adapt import adapt
from .melu import DECISION, MeLU, MeLUNet
from .neural_rank import NeuralRanker, masked_softmax_loss
from .ranker import BLENDS


class MeLURank(NeuralRanker, MeLU):
    name = "melu_rank"
    grid = {"test_steps": [1, 2, 3], "test_lr": [0.5, 0.2, 1.0, 2.0], "blend": BLENDS}
    inner_steps, inner_lr, first_order = 1, 0.5, False
    train_steps, meta_batch, lr, emb, hidden, eval_every = 400, 16, 2e-3, 32, 64, 100

    def build(self, item_features, user_dim, base, known):
        self.all_items_ = torch.arange(len(base))
        return MeLUNet(item_features, user_dim, base, known, self.emb, self.hidden)

    def support_loss(self, p, s_i, s_w, uf):
        """Softmax cross-entropy over the catalogue of the support items (weights ``s_w``; 0 = padding)."""
        logits = self.net.rate(p, self.all_items_, uf)
        target = torch.zeros(logits.shape[-1], dtype=logits.dtype).index_add(0, s_i, s_w.to(logits.dtype))
        return -(target * torch.log_softmax(logits, -1)).sum() / target.sum().clamp(min=1.0)

    def adapted(self, params, s_i, s_w, s_m, uf, steps, lr, first_order):
        loss = lambda p, i, w: self.support_loss(p, i, w, uf)  # noqa: E731
        return adapt(loss, params, DECISION, dict.fromkeys(DECISION, lr), steps, first_order, s_i, s_w * s_m)

    def task_loss(self, params, s_i, s_w, s_m, targets, support, uf):
        fast = self.adapted(params, s_i, s_w, s_m, uf, self.inner_steps, self.inner_lr, self.first_order)
        return masked_softmax_loss(self.net.rate(fast, self.all_items_, uf), targets, support)

    def support_weights(self, ratings: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self.weights(ratings.numpy()), dtype=torch.float32)

    def batch_loss(self, batch):
        s_i, s_r, s_m, targets, support, uf = batch
        return MeLU.batch_loss(self, (s_i, self.support_weights(s_r), s_m, targets, support, uf))

    def raw_scores(self, items, ratings, user_features):
        params = {n: p.detach() for n, p in self.net.named_parameters()}
        s_i = torch.as_tensor(np.asarray(items, np.int64))
        s_w = self.support_weights(torch.as_tensor(np.asarray(ratings, np.float32)))
        uf = torch.as_tensor(np.asarray(user_features, np.float32))
        with torch.enable_grad():
            fast = self.adapted(
                params,
                s_i,
                s_w,
                torch.ones_like(s_w),
                uf,
                int(self.params["test_steps"]),
                float(self.params["test_lr"]),
                True,
            )
        return self.net.rate(fast, self.all_items_, uf).detach().numpy().astype(np.float64)
