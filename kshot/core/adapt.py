"""The functional inner loop every gradient-based method shares: gradient descent on a dict of parameters.

Everything here is a pure function of a parameter dict: ``adapt`` takes the inner gradients with
``torch.func.grad`` (or ``torch.autograd.grad`` on leaf copies, the same numbers without functorch's
per-operator wrapping), first- or second-order, so one task's meta-gradient is a second derivative
through the whole loop and the tasks of a meta-batch can run under ``torch.func.vmap`` or side by side
in threads (``threaded_map``). The image methods (MAML, ANIL, Meta-SGD, Reptile) and the recommendation
methods (MeLU) adapt through it; no module is ever cloned or patched.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import torch
from torch.func import grad

from .errors import KshotError

Params = dict[str, torch.Tensor]
_POOLS: dict[int, ThreadPoolExecutor] = {}


def check_finite(name: str, value, positive: bool = True) -> float:
    """``value`` as a float, or a KshotError naming it when it is not a finite (positive) number."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or (positive and value <= 0):
        raise KshotError(f"{name} must be a finite number{' > 0' if positive else ''}, got {value!r}")
    return float(value)


def adapt(
    loss_fn: Callable,
    params: Params,
    names: tuple[str, ...],
    lrs: dict,
    steps: int,
    first_order: bool,
    *data,
    channels_last: bool = False,
    batch_size: int | None = None,
    autograd: bool = False,
) -> Params:
    """``steps`` steps of gradient descent on ``loss_fn(params, *data)`` over the parameters ``names``.

    ``lrs[name]`` is a float or a tensor shaped like the parameter (Meta-SGD). With ``first_order`` the
    inner gradients are constants for the outer derivative; otherwise it flows through them.
    ``channels_last`` keeps 4-d weights channels-last (CPU convolutions are much faster that way, and a
    weight in the default layout would switch the layers after it to the slow layout).
    ``batch_size`` (smaller than the number of items): step ``i`` uses items ``i*b .. i*b+b-1`` (modulo the
    number of items) of every tensor in ``data``, so the steps walk through the items in order.
    ``autograd``: take the inner gradients with ``torch.autograd.grad`` (the parameters ``names`` must
    require gradients) instead of ``torch.func.grad``: the same numbers without functorch's per-operator
    wrapping, ~15-30 % faster per task on CPU; not usable under ``vmap``.
    """
    fast = {n: params[n] for n in names}
    n_items = data[0].shape[0]

    def inner_loss(fast_params, *batch):
        return loss_fn({**params, **fast_params}, *batch)

    for step in range(steps):
        batch = data
        if batch_size is not None and batch_size < n_items:
            index = (torch.arange(batch_size, device=data[0].device) + step * batch_size) % n_items
            batch = tuple(t[index] for t in data)
        if autograd:
            with torch.enable_grad():
                values = torch.autograd.grad(
                    inner_loss(fast, *batch), list(fast.values()), create_graph=not first_order
                )
            grads = dict(zip(fast, values))
        else:
            grads = grad(inner_loss)(fast, *batch)
        fast = {n: w - lrs[n] * (grads[n].detach() if first_order else grads[n]) for n, w in fast.items()}
        if channels_last:
            fast = {n: to_channels_last(w) for n, w in fast.items()}
    return {**params, **fast}


def threaded_map(fn: Callable, n: int) -> list:
    """``[fn(0), ..., fn(n - 1)]`` computed by one worker thread per torch thread, each running torch
    single-threaded (the caller's thread count is restored afterwards). Every call of ``fn`` must be
    independent of the others; torch releases the GIL inside its operators."""
    threads = torch.get_num_threads()
    if threads <= 1 or n <= 1:
        return [fn(i) for i in range(n)]
    pool = _POOLS.get(threads) or _POOLS.setdefault(
        threads, ThreadPoolExecutor(threads, thread_name_prefix="kshot-task")
    )
    torch.set_num_threads(1)  # before the workers' first op: they keep one intra-op thread each
    try:
        return list(pool.map(fn, range(n)))
    finally:
        torch.set_num_threads(threads)


def join_tree(trees, join=torch.stack):
    """Join a list of nested tuples/dicts of tensors leaf by leaf: ``torch.stack`` (the loop's version
    of vmap's outputs) or ``torch.cat`` (chunks of vmap's outputs)."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: join_tree([t[k] for t in trees], join) for k in first}
    if isinstance(first, tuple):
        return tuple(join_tree(list(parts), join) for parts in zip(*trees))
    return join(trees)


def leaves(params: Params) -> Params:
    """Detached copies of ``params`` that require gradients (the roots of one task's autograd graph)."""
    return {n: p.detach().requires_grad_() for n, p in params.items()}


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """A 4-d tensor (images or conv weights) in channels-last layout; anything else unchanged.

    ``clone`` rather than ``contiguous``: with one channel both layouts pass ``is_contiguous`` and
    ``contiguous`` would keep strides that make the convolution pick the slow layout."""
    return x.clone(memory_format=torch.channels_last) if x.dim() == 4 and x.stride(1) != 1 else x
