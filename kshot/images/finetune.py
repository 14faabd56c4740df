"""Fine-tuning the last blocks of a pretrained network on the support photos (``method="finetune"``).

The last ``tune_blocks`` MBConv blocks and the head convolution are trained with a cosine classifier
(``scale`` x cosine to one weight vector per class, the weights starting at the class means of the frozen
features), cross-entropy, AdamW on ``kshot.core.loop.run_steps`` (warm-up, linear decay, optional time
limit). Every step draws a class-balanced batch of support photos and augments each one: random resized
crop, horizontal flip, colour jitter (kshot/images/transforms.py). The frozen part runs without gradients;
BatchNorm keeps its ImageNet statistics (a handful of photos is no batch to estimate them on).
Afterwards the classifier of the estimator is fitted afresh on the tuned features, so prediction,
``partial_fit`` and saving work as with frozen features.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..core.loop import run_steps
from ..core.prototypes import class_means, cosine_logits
from .transforms import Augment


def tuned_names(net, tune_blocks: int) -> list[str]:
    """The state-dict names of the tuned part (last ``tune_blocks`` blocks and the head convolution)."""
    first = len(net.blocks) - tune_blocks
    return [
        k
        for k in net.state_dict()
        if k.startswith("head.") or (k.startswith("blocks.") and int(k.split(".")[1]) >= first)
    ]


def frozen_part(net, tune_blocks: int, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net.blocks[: len(net.blocks) - tune_blocks](net.stem(x))


def tuned_part(net, tune_blocks: int, h: torch.Tensor) -> torch.Tensor:
    return net.head(net.blocks[len(net.blocks) - tune_blocks :](h)).mean((2, 3))


def finetune(
    encoder,
    views: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    features: np.ndarray,
    steps: int = 60,
    tune_blocks: int = 2,
    lr: float = 1e-3,
    batch_size: int = 20,
    scale: float = 10.0,
    seed: int = 0,
    progress: bool = False,
    time_limit: float | None = None,
) -> int:
    """Train ``encoder.net`` (a private copy: ``ImageEncoder.trainable()``) in place on ``views`` (uint8
    ``[N, S, S, 3]`` from ``transforms.train_view``) with ``labels`` in ``0..n_classes-1``; ``features``: the
    frozen features of the same photos (the classifier starts at their class means); returns the steps run."""
    net, device = encoder.net, encoder.device
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    views_t = torch.from_numpy(views).permute(0, 3, 1, 2)  # [N, 3, S, S] uint8
    y = torch.as_tensor(labels, dtype=torch.long)
    augment = Augment(size=encoder.image_size)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    names = set(tuned_names(net, tune_blocks))
    params = [p for n, p in net.named_parameters() if n in names]
    for p in params:
        p.requires_grad_(True)
    start = class_means(torch.as_tensor(features, dtype=torch.float32), y, n_classes)
    weight = torch.nn.Parameter(start.to(device))
    by_class = [np.flatnonzero(labels == c) for c in range(n_classes)]

    def step_loss(_step: int) -> torch.Tensor:
        per = max(1, batch_size // n_classes)
        idx = np.concatenate([rng.choice(m, size=min(per, len(m)), replace=False) for m in by_class])
        x = augment(views_t[idx], g).to(device)
        z = tuned_part(net, tune_blocks, frozen_part(net, tune_blocks, x))
        return F.cross_entropy(cosine_logits(z, weight, scale), y[idx].to(device))

    losses = run_steps(
        [{"params": params, "lr": lr}, {"params": [weight], "lr": lr * 10}],
        steps,
        step_loss,
        progress=progress,
        description="fine-tuning",
        time_limit=time_limit,
        max_steps=steps,
    )
    for p in net.parameters():
        p.requires_grad_(False)
    encoder.mark_tuned({n: t for n, t in net.state_dict().items() if n in names})
    return len(losses)
