"""Transfer baselines: Baseline and Baseline++ (Chen et al. 2019, "A Closer Look at Few-shot Classification").

Pre-training is ordinary supervised learning on all base classes (``meta_train`` feeds
``pretrain_loss`` shuffled mini-batches, because ``pretrains = True``): the backbone plus a linear
head (Baseline) or a cosine classifier, ``scale * cos(z, w_c)`` (Baseline++). The mean feature of the
pre-training data is tracked (``base_mean``, an exponential moving average) for SimpleShot.

At test time the backbone is frozen and the pre-training head dropped; ``test_time`` chooses
``"simpleshot"``: nearest class centroid of the centred, L2-normalised features (Wang et al. 2019), or
``"finetune"``: a new head of the same kind fitted on the support features only, with SGD
(momentum 0.9, weight decay 0.001) for ``finetune_steps`` full-batch steps (the paper: 100). The new
head starts at the class centroids (for the linear head, with biases that make it the
nearest-centroid rule), so fine-tuning is deterministic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...core.errors import KshotError, check_choice, check_positive_int
from ...core.prototypes import class_means, cosine_logits, num_ways, squared_distances
from ..backbones import encode
from .base import FewShotMethod


class Baseline(FewShotMethod):
    pretrains = True
    default_classifier = "linear"

    def __init__(
        self,
        backbone,
        num_classes: int,
        classifier: str | None = None,
        scale: float = 10.0,
        test_time: str = "simpleshot",
        finetune_steps: int = 100,
        finetune_lr: float = 0.01,
        mean_momentum: float = 0.01,
    ):
        super().__init__(backbone)
        self.num_classes = check_positive_int("num_classes", num_classes, 2)
        self.classifier = check_choice("classifier", classifier or self.default_classifier, ("linear", "cosine"))
        self.test_time = check_choice("test_time", test_time, ("simpleshot", "finetune"))
        self.finetune_steps = check_positive_int("finetune_steps", finetune_steps, 1)
        self.scale, self.finetune_lr, self.mean_momentum = float(scale), float(finetune_lr), float(mean_momentum)
        if not 0 < self.mean_momentum <= 1:
            raise KshotError(f"mean_momentum must be in (0, 1], got {mean_momentum!r}")
        self.adapts_with_gradients = self.test_time == "finetune"
        self.head = nn.Linear(backbone.out_dim, self.num_classes, bias=self.classifier == "linear")
        self.register_buffer("base_mean", torch.zeros(backbone.out_dim))

    def hparams(self) -> dict:
        return {
            "num_classes": self.num_classes,
            "classifier": self.classifier,
            "scale": self.scale,
            "test_time": self.test_time,
            "finetune_steps": self.finetune_steps,
            "finetune_lr": self.finetune_lr,
            "mean_momentum": self.mean_momentum,
        }

    def head_logits(self, z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """Logits of a linear (``z W^T + b``) or cosine (``scale * cos(z, W)``) head, ``[..., B, C]``."""
        if self.classifier == "cosine":
            return cosine_logits(z, weight, self.scale)
        return z @ weight.transpose(-1, -2) + bias.unsqueeze(-2)

    def pretrain_loss(self, items: torch.Tensor, labels: torch.Tensor):
        """Cross-entropy of the pre-training head on a mini-batch of base-class items; returns (loss, logits)."""
        z = encode(self.backbone, items)
        with torch.no_grad():
            self.base_mean.lerp_(z.mean(0), self.mean_momentum)
        logits = self.head_logits(z, self.head.weight, self.head.bias)
        return F.cross_entropy(logits, labels), logits

    def forward(self, support, support_labels, query):
        way = num_ways(support_labels)
        with torch.no_grad():  # the backbone is frozen at test time
            z_support, z_query = encode(self.backbone, support), encode(self.backbone, query)
        if self.test_time == "simpleshot":
            z_support = F.normalize(z_support - self.base_mean, dim=-1)
            z_query = F.normalize(z_query - self.base_mean, dim=-1)
            return -squared_distances(z_query, class_means(z_support, support_labels, way))
        weight, bias = self.finetune_head(z_support, support_labels, way)
        return self.head_logits(z_query, weight, bias)

    def finetune_head(self, z_support, support_labels, way):
        """Fit a new head on the support features (each task of a batch independently)."""
        centroids = class_means(z_support, support_labels, way)
        weight = centroids.clone().requires_grad_()
        bias = (-0.5 * centroids.pow(2).sum(-1)).requires_grad_() if self.classifier == "linear" else None
        params = [p for p in (weight, bias) if p is not None]
        optimizer = torch.optim.SGD(params, lr=self.finetune_lr, momentum=0.9, weight_decay=1e-3)
        with torch.enable_grad():
            for _ in range(self.finetune_steps):
                logits = self.head_logits(z_support, weight, bias)
                loss = F.cross_entropy(logits.reshape(-1, way), support_labels.reshape(-1), reduction="sum")
                optimizer.zero_grad()
                (loss / support_labels.shape[-1]).backward()
                optimizer.step()
        return weight.detach(), None if bias is None else bias.detach()


class BaselinePlusPlus(Baseline):
    """Baseline++: the same, with a cosine classifier."""

    default_classifier = "cosine"
