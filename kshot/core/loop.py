"""The optimisation loop of every in-memory fit (text fine-tuning, tagging, the neural recommenders):
a step budget, a learning-rate schedule, an optional time limit, gradient clipping, optional validation
that keeps the best weights, and a progress bar. Episodic meta-training with checkpoints, resume and
several processes is ``kshot.images.training.meta_train``.
"""

from __future__ import annotations

import copy
import time
from typing import Callable

import torch

from .errors import check_choice
from .progress import progress_bar

PROBE = 3  # steps timed before a ``time_limit`` sets the step budget
OPTIMIZERS = ("adamw", "adam")
SCHEDULES = ("linear", "constant")


def run_steps(
    param_groups: list[dict],
    steps: int,
    step_loss: Callable[[int], torch.Tensor],
    warmup: float = 0.1,
    progress: bool = False,
    description: str = "fine-tuning",
    time_limit: float | None = None,
    max_steps: int | None = None,
    optimizer: str = "adamw",
    weight_decay: float = 0.01,
    clip: float | None = 1.0,
    schedule: str = "linear",
    validate: Callable[[], float] | None = None,
    every: int = 0,
    keep_best: torch.nn.Module | None = None,
    history: list | None = None,
) -> list[float]:
    """Minimise ``step_loss(step)`` for ``steps`` steps; returns the loss of every step.

    ``optimizer``: AdamW (``weight_decay``) or Adam (no decay); ``schedule``: ``linear`` (warm-up over the
    ``warmup`` share of the steps, then linear decay to zero) or ``constant``; ``clip``: the gradients'
    global norm cap (None: off).

    ``validate`` (returns a number, lower is better) runs every ``every`` steps and after the last one;
    ``history`` gets ``(step, loss, score)`` for each run; with ``keep_best`` (a module) the weights of
    the best validation are put back at the end.

    ``time_limit`` (seconds): from step ``PROBE`` on, before every step, the step budget shrinks to what
    fits in it at the average speed measured so far, and the learning-rate schedule is stretched to the
    new budget (it still ends at zero): a machine that slows down mid-fit shortens the run instead of
    overrunning the limit. While the warm-up lasts (and at step ``PROBE`` in any case) the budget may also
    grow, up to ``max_steps``, when the steps run faster than ``steps`` assumed (a pessimistic speed probe);
    after that it only shrinks, so the decaying learning rate does not climb back up."""
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_choice("schedule", schedule, SCHEDULES)
    cls, kw = (torch.optim.AdamW, {"weight_decay": weight_decay}) if optimizer == "adamw" else (torch.optim.Adam, {})
    try:
        opt = cls(param_groups, fused=True, **kw)
    except (RuntimeError, TypeError):  # no fused kernel for this device / torch version
        opt = cls(param_groups, **kw)
    total = [steps]
    warm = lambda: max(1, int(warmup * total[0]))  # noqa: E731
    factor = (
        (lambda s: min((s + 1) / warm(), max(0.0, (total[0] - s) / max(1, total[0] - warm()))))
        if schedule == "linear"
        else (lambda s: 1.0)
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    params = [p for g in param_groups for p in g["params"]]
    losses, best, best_state = [], float("inf"), None
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
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            advance(1, total=total[0], loss=losses[-1])
            step += 1
            if validate is not None and ((every and step % every == 0) or step == total[0]):
                score = validate()
                if history is not None:
                    history.append((step, losses[-1], score))
                if score < best:
                    best = score
                    best_state = copy.deepcopy(keep_best.state_dict()) if keep_best is not None else None
    if best_state is not None:
        keep_best.load_state_dict(best_state)
    return losses
