"""What every gradient-based image method shares (MAML, first-order MAML, ANIL, Meta-SGD, Reptile): a
backbone, a linear head, and the inner loop of ``kshot.core.adapt`` run over the tasks of a meta-batch.

Everything here is a pure function of a parameter dict: the network runs through
``kshot.images.backbones.pure_forward`` (``torch.func.functional_call`` for modules made of other layers), the
inner gradients come from ``torch.func.grad`` and the meta-gradient
of one task from a second ``torch.func.grad`` around the whole inner loop (the loop and threads
strategies take the same derivatives with ``torch.autograd.grad`` on leaf copies of the parameters:
same numbers, without functorch's wrapping of every operator, 15-30 % faster per task on CPU). The tasks of a meta-batch then
run either through ``torch.func.vmap`` (``chunk_size`` tasks at a time, to bound memory) or in a loop
over the same per-task function: a plain Python loop, or ``threads``, the loop spread over one worker
thread per torch thread, each task on one core (small convolutions use several cores poorly, whole
tasks side by side do not). ``strategy="auto"`` picks ``threads`` on a multi-core CPU (``loop`` with one
thread; vmap turns the per-task convolutions into slow grouped convolutions on CPU) and vmap on
accelerators.

No module is cloned or patched: ``GradientMethod`` keeps one backbone and one linear head, and the
adapted weights only ever live in dicts of tensors. BatchNorm must use batch statistics (no running
statistics), as in the MAML paper.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from ...core.adapt import Params, adapt, check_finite, join_tree, leaves, threaded_map, to_channels_last
from ...core.errors import KshotError, check_choice, check_positive_int
from ...core.prototypes import num_ways
from ..backbones import pure_forward, supports_pure_forward, uses_running_stats
from ..episodes import Episode
from .base import FewShotMethod

STRATEGIES = ("auto", "loop", "threads", "vmap")
LOSSES = ("cross_entropy", "mse")
PRECISIONS = ("fp32", "bf16")


@dataclass
class MetaResult:
    """One meta-iteration: mean query loss, query logits ``[T, Q, N]`` and the meta-gradient per parameter."""

    loss: torch.Tensor
    logits: torch.Tensor
    grads: Params


class GradientMethod(FewShotMethod):
    """Base of the gradient-based methods: a backbone, a linear head (``way`` outputs) and the inner loop.

    Subclasses choose ``first_order``, which parameters adapt (``adapt_head_only``), learned learning
    rates (``inner_lrs``) and, for Reptile, the per-task meta-gradient (``task_meta_gradient``).

    ``inner_batch``: items per training-time inner step (default, or when at least the number of items:
    all of them), taken class by class in turn, so every mini-batch is class-balanced (with 10 items per
    class of 5 classes and ``inner_batch=10``, 5 steps see every item once, 2 per class per step; more
    steps than items repeat the same order). Reptile's paper reshuffles at random instead; regression
    (``loss="mse"``) keeps the items' order. ANIL computes the features once over all items (BatchNorm
    statistics of the whole set) and mini-batches only the head's steps. Test-time adaptation always
    uses the whole support set.

    ``transductive`` (test time only): ``True`` predicts the query items together, so BatchNorm's batch
    statistics are those of the whole query set (MAML's protocol); ``False`` predicts each query item
    with the statistics of the support set plus that one item (Reptile's non-transductive protocol),
    so no information passes between test items. One forward per query item: slower.

    ``precision="bf16"`` computes the meta-gradients (inner loops included) under bfloat16 autocast:
    about 1.35x faster on a CPU with AVX-512 BF16, with a meta-gradient at cosine ~0.99 of the fp32 one
    (docs/images.md compares the accuracies this reaches). Weights, inner updates, the optimizer and
    evaluation stay fp32.
    """

    backbone_defaults = {"track_running_stats": False}
    adapts_with_gradients = True
    first_order = False
    adapt_head_only = False
    default_inner_steps = 1
    default_inner_lr = 0.4

    def __init__(
        self,
        backbone: nn.Module,
        way: int = 5,
        inner_steps: int | None = None,
        inner_lr: float | None = None,
        test_inner_steps: int | None = None,
        strategy: str = "auto",
        chunk_size: int | None = None,
        loss: str = "cross_entropy",
        compile: bool = False,
        precision: str = "fp32",
        inner_batch: int | None = None,
        transductive: bool = True,
    ):
        super().__init__(backbone)
        if uses_running_stats(backbone):
            raise KshotError(
                f"{type(self).__name__} needs BatchNorm without running statistics (the inner loop "
                "normalises every task with its own batch statistics, as in the MAML paper); build the "
                "backbone with track_running_stats=False, e.g. backbone_params={'track_running_stats': "
                "False} (the default for this method unless backbone_params overrides it)"
            )
        if not isinstance(getattr(backbone, "out_dim", None), int):
            raise KshotError(
                f"backbone {type(backbone).__name__} has no integer out_dim; gradient-based "
                "methods need it to size their linear head"
            )
        self.way = check_positive_int("way", way, 1)
        self.inner_steps = check_positive_int(
            "inner_steps", self.default_inner_steps if inner_steps is None else inner_steps, 0
        )
        self.test_inner_steps = check_positive_int(
            "test_inner_steps", self.inner_steps if test_inner_steps is None else test_inner_steps, 0
        )
        self.inner_lr = check_finite("inner_lr", self.default_inner_lr if inner_lr is None else inner_lr)
        self.strategy = check_choice("strategy", strategy, STRATEGIES)
        self.chunk_size = None if chunk_size is None else check_positive_int("chunk_size", chunk_size, 1)
        self.loss_name = check_choice("loss", loss, LOSSES)
        if not isinstance(compile, bool):
            raise KshotError(f"compile must be true or false, got {compile!r}")
        self.compile = compile
        self.precision = check_choice("precision", precision, PRECISIONS)
        self.inner_batch = None if inner_batch is None else check_positive_int("inner_batch", inner_batch, 1)
        if not isinstance(transductive, bool):
            raise KshotError(f"transductive must be true or false, got {transductive!r}")
        self.transductive = transductive
        self._compiled: dict = {}
        self._pure = supports_pure_forward(backbone)  # thread-safe forward without functional_call
        if self.loss_name == "mse" and self.way != 1:
            raise KshotError(f"loss='mse' (regression) needs way=1 (one output), got way={self.way}")
        self.head = nn.Linear(backbone.out_dim, self.way)
        self.task_way = self.way  # classes of the episode being processed (set by prepare)
        self.channels_last = False  # set per call by run_tasks
        self.autograd = False  # set per call by run_tasks: torch.autograd.grad instead of torch.func.grad

    def hparams(self) -> dict:
        return {
            "way": self.way,
            "inner_steps": self.inner_steps,
            "inner_lr": self.inner_lr,
            "test_inner_steps": self.test_inner_steps,
            "strategy": self.strategy,
            "chunk_size": self.chunk_size,
            "loss": self.loss_name,
            "compile": self.compile,
            "precision": self.precision,
            "inner_batch": self.inner_batch,
            "transductive": self.transductive,
        }

    # ---- the network as a pure function of a parameter dict ----------------------------------------

    def features(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """Backbone features of one task's items ``[S, ...]`` with the weights in ``params``."""
        backbone = {k[len("backbone.") :]: v for k, v in params.items() if k.startswith("backbone.")}
        x = to_channels_last(x) if self.channels_last else x
        if self._pure:
            return pure_forward(self.backbone, backbone, x, autograd=self.autograd)
        return functional_call(self.backbone, backbone, (x,))

    def classify(self, params: Params, z: torch.Tensor) -> torch.Tensor:
        return F.linear(z, params["head.weight"][: self.task_way], params["head.bias"][: self.task_way])

    def logits(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        return self.classify(params, self.features(params, x))

    def criterion(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy on logits, or (``loss='mse'``, regression) squared error of the single output."""
        return F.mse_loss(out.squeeze(-1), y) if self.loss_name == "mse" else F.cross_entropy(out, y)

    def adapted_names(self, params: Params) -> tuple[str, ...]:
        return tuple(
            n for n in params if n.startswith("head.") or (n.startswith("backbone.") and not self.adapt_head_only)
        )

    def inner_lrs(self, params: Params) -> dict:
        """Learning rate of each adapted parameter: the scalar ``inner_lr`` (Meta-SGD learns them)."""
        return {n: self.inner_lr for n in self.adapted_names(params)}

    def adapt(
        self,
        params: Params,
        x: torch.Tensor,
        y: torch.Tensor,
        steps: int,
        first_order: bool,
        batch_size: int | None = None,
    ):
        """Parameters adapted to one task's items ``x`` and labels ``y`` (``batch_size`` items per step,
        class by class in turn; default all).

        With only the head adapting (ANIL), features are computed once and the loop runs on them.
        """
        if self.autograd:  # the roots of torch.autograd.grad (already so inside task_meta_gradient)
            params = {n: p if p.requires_grad else p.detach().requires_grad_() for n, p in params.items()}
        names, lrs = self.adapted_names(params), self.inner_lrs(params)
        if batch_size is not None and batch_size < y.shape[0] and self.loss_name != "mse":
            order = interleave_classes(y, self.task_way)
            x, y = x[order], y[order]
        if self.adapt_head_only:
            z = self.features(params, x)
            return adapt(
                lambda p, z_, y_: self.criterion(self.classify(p, z_), y_),
                params,
                names,
                lrs,
                steps,
                first_order,
                z,
                y,
                batch_size=batch_size,
                autograd=self.autograd,
            )
        return adapt(
            lambda p, x_, y_: self.criterion(self.logits(p, x_), y_),
            params,
            names,
            lrs,
            steps,
            first_order,
            x,
            y,
            channels_last=self.channels_last,
            batch_size=batch_size,
            autograd=self.autograd,
        )

    # ---- one task ----------------------------------------------------------------------------------

    def task_loss(self, params: Params, support, support_labels, query, query_labels):
        """Query loss of one task after the training-time inner loop, and the query logits."""
        fast = self.adapt(params, support, support_labels, self.inner_steps, self.first_order, self.inner_batch)
        logits = self.logits(fast, query)
        return self.criterion(logits, query_labels), logits

    def task_meta_gradient(self, params: Params, support, support_labels, query, query_labels):
        """(meta-gradient dict, (query loss, query logits)) of one task."""

        def loss_and_aux(p):
            loss, logits = self.task_loss(p, support, support_labels, query, query_labels)
            return loss, (loss.detach(), logits.detach())

        if not self.autograd:
            return grad(loss_and_aux, has_aux=True)(params)
        params = leaves(params)
        with torch.enable_grad():
            loss, aux = loss_and_aux(params)
            values = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        return {n: torch.zeros_like(p) if g is None else g for (n, p), g in zip(params.items(), values)}, aux

    def task_predict(self, params: Params, support, support_labels, query):
        fast = self.adapt(params, support, support_labels, self.test_inner_steps, True)
        fast = {n: w.detach() for n, w in fast.items()}
        if self.transductive:
            return self.logits(fast, query)
        with torch.no_grad():  # each query item normalised with the support set's statistics and its own
            return torch.stack([self.logits(fast, torch.cat([support, item[None]]))[-1] for item in query])

    # ---- a meta-batch --------------------------------------------------------------------------------

    def resolved_strategy(self, device: torch.device) -> str:
        strategy = self.strategy
        if strategy == "auto":
            strategy = "vmap" if device.type != "cpu" else "threads" if torch.get_num_threads() > 1 else "loop"
        if strategy == "threads" and (not self._pure or self.compile):
            return "loop"  # functional_call swaps tensors into the shared module: one thread at a time
        return strategy

    def run_tasks(self, fn: Callable, tasks: tuple):
        """``fn(params, *task)`` for each task along dim 0 of ``tasks``, outputs stacked along dim 0.

        The parameters enter detached: ``fn`` takes its own derivatives with ``torch.func.grad``, and no
        outer autograd graph is recorded (the training loop gets the meta-gradient through ``loss``)."""
        params = {n: p.detach() for n, p in self.named_parameters()}
        strategy = self.resolved_strategy(tasks[0].device)
        if strategy == "vmap":  # the backbone keeps CPU-friendly channels-last weights; under vmap, cuDNN's
            # convolution backward then clones to channels-last, which functorch cannot batch (torch 2.11,
            # H200). ``contiguous()`` is not enough: a 1-channel weight counts as both layouts.
            params = {n: p.clone(memory_format=torch.contiguous_format) for n, p in params.items()}
        # CPU loops: keep images and weights channels-last (the vmap path leaves layouts to the device)
        self.channels_last = strategy != "vmap" and tasks[0].device.type == "cpu"
        # loops take plain autograd derivatives (no functorch wrapping); vmap and compile need torch.func
        self.autograd = strategy != "vmap" and not self.compile
        if self.compile:  # torch.compile of the per-task function (fuses BatchNorm, ReLU, pooling)
            fn = self._compiled.setdefault(fn.__name__, torch.compile(fn, dynamic=False))
        if strategy == "vmap":  # chunk_size tasks per vmap; a lone task runs unbatched (vmap over one
            # task trips over a channels-last copy in the gradient of max-pooling, torch 2.13)
            batched = vmap(fn, in_dims=(None,) + (0,) * len(tasks))
            size = self.chunk_size or tasks[0].shape[0]
            return join_tree(
                [
                    batched(params, *chunk)
                    if chunk[0].shape[0] > 1
                    else join_tree([fn(params, *(t[0] for t in chunk))])
                    for chunk in zip(*(t.split(size) for t in tasks))
                ],
                torch.cat,
            )
        one_task = lambda i: fn(params, *(t[i] for t in tasks))  # noqa: E731
        n = tasks[0].shape[0]
        return join_tree(threaded_map(one_task, n) if strategy == "threads" else [one_task(i) for i in range(n)])

    def meta_gradients(self, episode: Episode) -> MetaResult:
        """One meta-iteration without the optimizer step: the mean query loss over the T tasks of
        ``episode`` (batched ``[T, ...]`` or a single task), their query logits and the meta-gradient
        (mean over tasks) of every parameter. Leaves ``.grad`` untouched."""
        tasks = self.prepare(episode.support, episode.support_labels, episode.query, episode.query_labels)
        fn = self.task_meta_gradient
        if self.precision == "bf16":
            fn = bf16_autocast(fn, tasks[0].device.type)
        grads, (losses, logits) = self.run_tasks(fn, tasks)
        grads = {n: g.mean(0) for n, g in grads.items()}
        if self.precision == "bf16":  # bf16 logits out of autocast; gradients of fp32 weights are fp32
            losses, logits = losses.float(), logits.float()
        logits = logits if episode.support_labels.dim() == 2 else logits[0]
        return MetaResult(losses.mean(), logits, grads)

    def loss(self, episode: Episode):
        """A surrogate whose value is the mean query loss and whose gradient is the meta-gradient, so
        the generic training loop (``loss.backward(); optimizer.step()``) performs the meta-update."""
        result = self.meta_gradients(episode)
        surrogate = sum((p * result.grads[n]).sum() for n, p in self.named_parameters())
        return result.loss.detach() + surrogate - surrogate.detach(), result.logits

    def forward(self, support, support_labels, query):
        """Query logits after ``test_inner_steps`` inner steps on the support set (``[Q, N]`` or ``[T, Q, N]``)."""
        tasks = self.prepare(support, support_labels, query)
        with torch.enable_grad():
            logits = self.run_tasks(self.task_predict, tasks)
        return logits if support_labels.dim() == 2 else logits[0]

    def prepare(self, support, support_labels, *rest):
        """Add a task dimension to an unbatched episode, check the way and lay images out channels-last."""
        way = self.way if self.loss_name == "mse" else num_ways(support_labels)
        if way > self.way:
            raise KshotError(
                f"{type(self).__name__} was built with way={self.way} (its head has {self.way} "
                f"outputs) but the episode has {way} classes; train with way={way} "
                f"(kshot train --way {way}, or method_params={{'way': {way}}})"
            )
        self.task_way = way
        tensors = (support, support_labels, *rest)
        if support_labels.dim() == 1:
            tensors = tuple(t.unsqueeze(0) for t in tensors)
        return tensors


def interleave_classes(labels: torch.Tensor, way: int) -> torch.Tensor:
    """Order of the items that takes one item of each class in turn (first items of classes 0..way-1,
    then the second ones, ...), keeping the order within a class; ``labels`` in ``0..way-1``."""
    onehot = (labels[:, None] == torch.arange(way, device=labels.device)).long()  # F.one_hot breaks vmap
    rank = (onehot.cumsum(0) - 1).gather(1, labels[:, None])[:, 0]  # position of the item in its class
    return torch.argsort(rank * way + labels)


def bf16_autocast(fn: Callable, device_type: str) -> Callable:
    """``fn`` run under bfloat16 autocast: convolutions and matrix products in bf16, the weights, the
    inner updates and the returned gradients stay fp32. Autocast state is per thread, so the wrapper
    enters it inside each call (the ``threads`` strategy's workers included)."""

    @functools.wraps(fn)
    def mixed(*args):
        with torch.autocast(device_type, dtype=torch.bfloat16):
            return fn(*args)

    return mixed
