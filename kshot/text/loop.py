"""The one optimisation loop of the text methods: AdamW, linear warm-up then linear decay, a step budget."""

from __future__ import annotations

from typing import Callable

import torch

from ..progress import progress_bar


def run_steps(param_groups: list[dict], steps: int, step_loss: Callable[[int], torch.Tensor],
              warmup: float = 0.1, progress: bool = False, description: str = "fine-tuning") -> list[float]:
    """Minimise ``step_loss(step)`` for ``steps`` steps; returns the loss of every step."""
    try:
        opt = torch.optim.AdamW(param_groups, weight_decay=0.01, fused=True)
    except (RuntimeError, TypeError):  # no fused kernel for this device / torch version
        opt = torch.optim.AdamW(param_groups, weight_decay=0.01)
    warm = max(1, int(warmup * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
    losses = []
    with torch.enable_grad(), progress_bar(steps, description, enabled=progress, fields="loss {loss:.3f}") as advance:
        for step in range(steps):
            loss = step_loss(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in param_groups for p in g["params"]], 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            advance(1, loss=losses[-1])
    return losses
