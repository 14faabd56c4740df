"""Reptile (Nichol et al. 2018), batched version.

Each task adapts all weights with ``inner_steps`` plain SGD steps on all of its labelled items (support
and query: Reptile has no inner train/test split); the initialisation then moves toward the mean of the
adapted weights. In the generic training loop this is the meta-gradient ``theta - mean(theta_adapted)``:
with ``optimizer="sgd"`` and learning rate ``eps`` the update is exactly Reptile's
``theta += eps (mean(theta_adapted) - theta)`` (``lr_schedule="linear"`` anneals ``eps`` to 0 as in the
paper); with Adam (the default) Adam's step replaces the outer step size. ``inner_batch`` gives
inner mini-batches (e.g. 10 items per step over 5-way tasks of 10 items per class). Deviations from
the paper's code: the inner optimizer is plain SGD at ``inner_lr`` (the paper: Adam with beta1 = 0,
whose moments persist across tasks), mini-batches are class-balanced in a fixed order (the paper
reshuffles), and test-time adaptation uses the whole support set in every step (the support set only,
as for MAML). The reported logits and loss are the query's after adaptation (a training-set figure).
"""

from __future__ import annotations

import torch

from .gradient import GradientMethod


class Reptile(GradientMethod):
    first_order = True
    default_inner_steps = 5
    default_inner_lr = 0.1

    def task_meta_gradient(self, params, support, support_labels, query, query_labels):
        fast = self.adapt(
            params,
            torch.cat([support, query]),
            torch.cat([support_labels, query_labels]),
            self.inner_steps,
            True,
            self.inner_batch,
        )
        with torch.no_grad():
            logits = self.logits(fast, query)
            grads = {n: params[n] - fast[n] for n in params}
        return grads, (self.criterion(logits, query_labels), logits)
