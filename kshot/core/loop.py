"""The one optimisation loop of the text methods: AdamW, linear warm-up then linear decay, a step budget."""

from __future__ import annotations

from typing import Callable

import time

import torch

from .progress import progress_bar


PROBE = 3   # steps timed before a ``time_limit`` sets the step budget


def run_steps(param_groups: list[dict], steps: int, step_loss: Callable[[int], torch.Tensor],
              warmup: float = 0.1, progress: bool = False, description: str = "fine-tuning",
              time_limit: float | None = None, max_steps: int | None = None) -> list[float]:
    """Minimise ``step_loss(step)`` for ``steps`` steps; returns the loss of every step.

    ``time_limit`` (seconds): from step ``PROBE`` on, before every step, the step budget shrinks to what
    fits in it at the average speed measured so far, and the learning-rate schedule is stretched to the
    new budget (it still ends at zero): a machine that slows down mid-fit shortens the run instead of
    overrunning the limit. While the warm-up lasts (and at step ``PROBE`` in any case) the budget may also
    grow, up to ``max_steps``, when the steps run faster than ``steps`` assumed (a pessimistic speed probe);
    after that it only shrinks, so the decaying learning rate does not climb back up."""
    try:
        opt = torch.optim.AdamW(param_groups, weight_decay=0.01, fused=True)
    except (RuntimeError, TypeError):  # no fused kernel for this device / torch version
        opt = torch.optim.AdamW(param_groups, weight_decay=0.01)
    total = [steps]
    warm = lambda: max(1, int(warmup * total[0]))  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm(), max(0.0, (total[0] - s) / max(1, total[0] - warm()))))
    losses = []
    start = time.perf_counter()
    with torch.enable_grad(), progress_bar(steps, description, enabled=progress, fields="loss {loss:.3f}") as advance:
        step = 0
        while step < total[0]:
            if time_limit is not None and step >= PROBE:
                per_step = (time.perf_counter() - start) / step
                ceiling = max(total[0], max_steps or 0) if step <= max(warm(), PROBE) else total[0]
                total[0] = max(min(step + 1, total[0]), min(ceiling, int(time_limit / per_step)))
            loss = step_loss(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in param_groups for p in g["params"]], 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            advance(1, total=total[0], loss=losses[-1])
            step += 1
    return losses
