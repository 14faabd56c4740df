"""Meta-SGD (Li et al. 2017).

MAML whose inner learning rate is a learned tensor per parameter (same shape, initialised to
``inner_lr``), meta-learned with the initialisation: the inner step is ``w - lr_w * grad_w``
elementwise. Shares the inner loop of ``gradient.py`` (over ``kshot.core.adapt``).
"""

from __future__ import annotations

import torch
from torch import nn

from .gradient import GradientMethod


class MetaSGD(GradientMethod):
    def __init__(self, backbone, way: int = 5, **params):
        super().__init__(backbone, way, **params)
        self.lr_names = self.adapted_names(dict(self.named_parameters()))
        self.lrs = nn.ParameterList(
            [nn.Parameter(torch.full_like(p, self.inner_lr)) for n, p in self.named_parameters() if n in self.lr_names]
        )

    def inner_lrs(self, params):
        return {n: params[f"lrs.{i}"] for i, n in enumerate(self.lr_names)}
