"""Episodic meta-training: Adam (or plain SGD), step or linear learning-rate schedule, validation on fixed episodes,
best-checkpoint selection, early stopping, resume, progress bar and optional TensorBoard logging.
Methods with ``pretrains = True`` (transfer baselines) get shuffled mini-batches of all training
classes instead of episodes; ``TrainConfig.augment`` adds data augmentation (kshot.images.augment).

A run directory holds ``config.json`` (the full ``TrainConfig``), ``last.{safetensors,json}``
(weights + optimizer state, for ``resume``) and ``best.{safetensors,json}`` (best validation accuracy).

Under torchrun (``kshot train --nproc N``) the same loop runs in every process (``kshot.core.distributed``):
each rank takes its share of the tasks (or of the mini-batch) of a step, the gradients are averaged
over the ranks, every rank makes the same optimizer step, and rank 0 alone validates and writes files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core import distributed
from ..core.allocator import tune_allocator
from ..core.checkpoint import load_checkpoint, save_checkpoint
from ..core.errors import KshotError, check_choice, check_positive_int
from ..core.io import atomic_write
from ..core.model_format import FORMAT_VERSION, check_manifest, read_manifest
from ..core.progress import progress_bar
from ..core.version import __version__
from ..data import load_dataset
from .augment import Augmentation, generator_for
from .backbones import BACKBONES
from .episodes import Episode, EpisodeSampler
from .evaluation import evaluate
from .methods import METHODS, build_method

OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("step", "linear")


class TrainingError(KshotError):
    """Training cannot go on (e.g. the loss became NaN)."""


@dataclass
class TrainConfig:
    """Everything a training run depends on; stored as ``config.json`` in the run directory."""

    method: str = "protonet"
    dataset: str = "omniglot"
    backbone: str = "conv4"
    train_split: str = "train"
    val_split: str = "val"
    way: int = 60
    shot: int = 1
    query: int = 5
    episodes: int = 5000  # training episodes (tasks); meta_batch tasks make one iteration
    meta_batch: int = 1
    lr: float = 1e-3
    optimizer: str = "adam"  # or "sgd" (no momentum: Reptile's outer step theta += lr (mean adapted - theta))
    lr_schedule: str = "step"  # "step": times lr_gamma every lr_step episodes; "linear": down to 0 at the end
    lr_step: int = 2000  # halve (lr_gamma) the learning rate every lr_step episodes
    lr_gamma: float = 0.5
    weight_decay: float = 0.0
    val_way: int = 5
    val_shot: int | None = None  # None: the training shot
    val_query: int = 15
    val_every: int = 500  # episodes between validations (0: only at the end)
    val_episodes: int = 200
    patience: int = 0  # stop after this many validations without improvement (0: never)
    seed: int = 0
    method_params: dict = field(default_factory=dict)
    backbone_params: dict = field(default_factory=dict)
    dataset_params: dict = field(default_factory=dict)
    data_root: str | None = None
    device: str = "cpu"
    tensorboard: bool = False
    batch_size: int = 64  # mini-batch of pre-training methods (pretrains=True), instead of episodes
    augment: dict = field(default_factory=dict)  # kshot.images.augment.Augmentation keys; {} = off

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """A checked config from a dict (a config file, a run's config.json); an unknown key is a KshotError."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise KshotError(f"unknown config key {unknown[0]!r}; allowed keys: {', '.join(names)}")
        return cls(**d).validate()

    def validate(self) -> "TrainConfig":
        """Check every field (KshotError naming the first bad one); returns self."""
        for name in (
            "way",
            "shot",
            "episodes",
            "meta_batch",
            "val_way",
            "val_query",
            "val_episodes",
            "lr_step",
            "batch_size",
        ):
            check_positive_int(name, getattr(self, name), 1)
        for name in ("query", "val_every", "patience", "seed"):
            check_positive_int(name, getattr(self, name), 0)
        if self.val_shot is not None:
            check_positive_int("val_shot", self.val_shot, 1)
        for name in ("lr", "lr_gamma", "weight_decay"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
                or (name == "lr" and value == 0)
            ):
                raise KshotError(f"{name} must be a finite number{' > 0' if name == 'lr' else ' >= 0'}, got {value!r}")
        check_choice("backbone", self.backbone, BACKBONES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        if self.method not in METHODS:
            raise KshotError(f"unknown method {self.method!r}; choose one of: {', '.join(METHODS)}")
        for name in ("method_params", "backbone_params", "dataset_params", "augment"):
            if not isinstance(getattr(self, name), dict):
                raise KshotError(f"{name} must be a mapping, got {getattr(self, name)!r}")
        Augmentation.from_dict(self.augment)
        if METHODS[self.method].pretrains and self.meta_batch != 1:
            raise KshotError(
                f"method {self.method!r} pre-trains on mini-batches; meta_batch must be 1, got {self.meta_batch}"
            )
        return self

    def to_dict(self) -> dict:
        """The config as a JSON-able dict (what config.json holds)."""
        return dataclasses.asdict(self)


def load_split(config: TrainConfig, split: str):
    return load_dataset(config.dataset, split, root=config.data_root, **config.dataset_params)


def check_run(config: TrainConfig, out_dir, resume: bool, world_size: int = 1) -> str | None:
    """Refuse what cannot run before anything starts (also called by ``kshot train --nproc`` before it
    launches the processes): a resume without checkpoint, a run directory already used, a step that
    cannot be split over ``world_size`` processes. Returns a notice to print, or None."""
    config.validate()
    out = Path(out_dir)
    notice = None
    if resume:
        if not (out / "last.json").is_file():
            raise KshotError(
                f"cannot resume: {out} has no last.json checkpoint"
                + (" (with several machines --out must be on a shared file system)" if world_size > 1 else "")
            )
        notice = check_resume(config, json.loads((out / "last.json").read_text()).get("config", {}))
    elif (out / "last.json").exists() or (out / "best.json").exists():
        raise KshotError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if world_size > 1:
        pretrain = METHODS[config.method].pretrains
        total, name, flag = (
            (config.batch_size, "batch_size", "--batch-size")
            if pretrain
            else (config.meta_batch, "meta_batch", "--meta-batch")
        )
        what = "items" if pretrain else "tasks"
        if total < world_size:
            raise KshotError(
                f"{name}={total} is smaller than the number of processes ({world_size}): every "
                f"process trains on its own share of the {what} of a step; use {flag} "
                f"{world_size} or a multiple of it, or fewer processes"
            )
        split = distributed.split_description(total, world_size, what)
        if total % world_size:
            split += " (uneven; the gradients are weighted by share, so the step equals the one-process step)"
        notice = split if notice is None else f"{notice}\n{split}"
    return notice


def meta_train(
    config: TrainConfig, out_dir, resume: bool = False, progress: bool = True, train_data=None, val_data=None
) -> dict:
    """Train ``config.method`` episodically; return a summary (best validation accuracy, timings).

    Under torchrun every process calls this; only rank 0's summary holds the validation results."""
    world = distributed.setup(config.device)
    notice = check_run(config, out_dir, resume, world.size)
    tune_allocator()
    out = Path(out_dir)
    main = world.is_main
    writer_cls = _tensorboard_writer() if config.tensorboard and main else None
    if main:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_write(out / "config.json", "w") as f:
            json.dump({**config.to_dict(), "kshot_version": __version__}, f, indent=2)

    augment = Augmentation.from_dict(config.augment)
    train_data = augment.data(train_data if train_data is not None else load_split(config, config.train_split))
    val_data = val_data if val_data is not None else load_split(config, config.val_split)
    pretrain = METHODS[config.method].pretrains  # transfer baselines: shuffled mini-batches, not episodes
    sampler = (
        None if pretrain else EpisodeSampler(train_data.labels, config.way, config.shot, config.query, seed=config.seed)
    )
    val_shot = config.val_shot or config.shot
    EpisodeSampler(val_data.labels, config.val_way, val_shot, config.val_query)  # fail early if impossible

    torch.manual_seed(config.seed)
    device = world.device
    extra = {"num_classes": train_data.num_classes} if pretrain else {}
    method = build_method(
        config.method, train_data.item_shape, config.backbone, config.backbone_params, **config.method_params, **extra
    ).to(device)
    optim_cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.SGD
    optimizer = optim_cls(method.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    meta = {
        "kind": "episodic-run",
        "format_version": FORMAT_VERSION,
        "kshot_version": __version__,
        "method": config.method,
        "method_params": method.hparams(),
        "backbone": config.backbone,
        "backbone_params": config.backbone_params,
        "item_shape": list(train_data.item_shape),
        "dataset": config.dataset,
        "train_split": config.train_split,
        "seed": config.seed,
        "config": config.to_dict(),
    }

    T = config.meta_batch
    iterations = math.ceil(config.episodes / T)
    start, best, history, stale, train_seconds = 0, -1.0, [], 0, 0.0
    if resume:
        state, last, optim_state = load_checkpoint(out / "last")
        method.load_state_dict(state)
        if optim_state is not None:
            optimizer.load_state_dict(optim_state)
        start, best, history = last["iteration"], last["best_val"], last["history"]
        stale, train_seconds = last.get("stale", 0), last.get("train_seconds", 0.0)
    distributed.broadcast_module(world, method)  # every rank starts from rank 0's weights
    writer = writer_cls(str(out / "tensorboard")) if writer_cls else None

    def validate_and_save(it: int) -> bool:
        nonlocal best, stale
        score = evaluate(
            method,
            val_data,
            config.val_way,
            val_shot,
            config.val_query,
            config.val_episodes,
            seed=config.seed,
            device=device,
        )
        improved = score.accuracy > best
        best, stale = (score.accuracy, 0) if improved else (best, stale + 1)
        history.append(
            {
                "iteration": it,
                "episodes": it * T,
                "val_accuracy": score.accuracy,
                "val_ci95": score.ci95,
                "train_seconds": round(train_seconds, 2),
            }
        )
        state = {
            **meta,
            "iteration": it,
            "episodes_done": it * T,
            "best_val": best,
            "stale": stale,
            "history": history,
            "train_seconds": train_seconds,
        }
        if improved:
            save_checkpoint(out / "best", method.state_dict(), {**state, "val_accuracy": score.accuracy})
        save_checkpoint(out / "last", method.state_dict(), state, optimizer)
        if writer:
            writer.add_scalar("val/accuracy", score.accuracy, it * T)
        log(
            f"episode {it * T}: validation {100 * score.accuracy:.2f} ± {100 * score.ci95:.2f}% "
            f"(best {100 * best:.2f}%), {train_seconds:.0f} s of training"
        )
        return config.patience > 0 and stale >= config.patience

    method.train()
    seen, loss_avg, acc_avg, step_seconds = 0, 0.0, 0.0, 0.0
    fields = "loss {loss:.3f}  acc {acc:.3f}  {eps:.1f} ep/s  val {val}"
    step_size = min(config.batch_size, len(train_data)) if pretrain else T  # items or tasks of a step
    lo, hi = distributed.share(step_size, world)  # this rank's share of them
    weight = (hi - lo) / step_size
    with progress_bar(iterations * T, f"training {config.method}", enabled=progress and main, fields=fields) as advance:
        log = advance.log if main else (lambda message: None)
        if notice and not distributed.launched():  # the launcher printed it before starting the processes
            log(notice)
        advance(start * T)
        for it in range(start, iterations):
            lr = learning_rate(config, it, iterations)
            for group in optimizer.param_groups:
                group["lr"] = lr
            t0 = time.perf_counter()
            # one process: the whole step; rank r of W: the same draws, its share of them
            generator = generator_for(config.seed, it) if augment.transforms_images else None
            if pretrain:
                items, targets = minibatch(train_data, config.batch_size, config.seed, it)
                items, targets = augment.images(items, generator)[lo:hi], targets[lo:hi]
                items, targets = items.to(device), targets.to(device)
                loss, logits = method.pretrain_loss(items, targets)
            else:
                if generator is None:
                    batch = next(sampler.episodes(train_data.items, hi - lo, start=it * T + lo, batch=hi - lo))
                else:  # the augmentation draws of the whole step, whatever the share
                    batch = augment.episode(
                        next(sampler.episodes(train_data.items, T, start=it * T, batch=T)), generator
                    )
                    batch = batch if T == 1 else Episode(*(t[lo:hi] for t in batch.astuple()))
                batch = batch.to(device)
                loss, logits = method.loss(batch)
                targets = batch.query_labels
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            acc = (logits.argmax(-1) == targets).float().mean().item()
            loss_value, acc = distributed.reduce(world, method.parameters(), weight, [loss.item(), acc])
            if not math.isfinite(loss_value):
                raise TrainingError(
                    f"loss became {loss_value} at episode {it * T + 1} (iteration {it + 1}); "
                    f"the last good checkpoint is kept in {out}/last.*"
                )
            optimizer.step()
            distributed.average_buffers(world, method, weight)
            seen += 1
            loss_avg += (loss_value - loss_avg) / min(seen, 50)
            acc_avg += (acc - acc_avg) / min(seen, 50)
            if writer:
                writer.add_scalar("train/loss", loss_value, (it + 1) * T)
                writer.add_scalar("train/accuracy", acc, (it + 1) * T)
            dt = time.perf_counter() - t0
            step_seconds += dt
            train_seconds += dt
            done = (it + 1) * T
            stop = False
            if (config.val_every and done // config.val_every > (it * T) // config.val_every) or it + 1 == iterations:
                stop = distributed.broadcast_flag(world, validate_and_save(it + 1) if main else False)
            advance(
                T,
                loss=loss_avg,
                acc=acc_avg,
                eps=seen * T / max(step_seconds, 1e-9),
                val=f"{100 * best:.2f}" if best >= 0 else "-",
            )
            if stop:
                break
    if writer:
        writer.close()
    distributed.finish(world)
    return {
        "best_val_accuracy": best,
        "iterations": history[-1]["iteration"] if history else start,
        "episodes": (history[-1]["iteration"] if history else start) * T,
        "train_seconds": train_seconds,
        "history": history,
        "run_dir": str(out),
        "rank": world.rank,
        "world_size": world.size,
    }


def check_resume(config: TrainConfig, previous: dict) -> str | None:
    """Refuse to resume with another optimizer (its saved state does not fit); a notice when a linear
    schedule's length changed (the rate continues on the new slope, not as an uninterrupted run)."""
    before = previous.get("optimizer", "adam")
    if before != config.optimizer:
        raise KshotError(
            f"cannot resume with optimizer {config.optimizer!r}: the run was trained with "
            f"{before!r} and its checkpoint holds that optimizer's state; resume with "
            f"--optimizer {before} or start a new run"
        )
    if config.lr_schedule == "linear" and previous.get("episodes") not in (None, config.episodes):
        return (
            f"note: the linear learning-rate schedule now spans {config.episodes} episodes instead of "
            f"{previous['episodes']}; the rate continues on the new slope from here"
        )
    return None


def learning_rate(config: TrainConfig, it: int, iterations: int) -> float:
    """The learning rate of iteration ``it`` (0-based) of ``iterations``: ``step`` multiplies it by
    ``lr_gamma`` every ``lr_step`` episodes; ``linear`` takes it from ``lr`` down towards 0 (Reptile's
    annealed meta step size; the last iteration gets ``lr / iterations``)."""
    if config.lr_schedule == "linear":
        return config.lr * (1 - it / iterations)
    return config.lr * config.lr_gamma ** ((it * config.meta_batch) // config.lr_step)


def minibatch(data, size: int, seed: int, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mini-batch ``i`` of shuffled passes over ``data`` (items, labels): a fresh permutation per pass,
    a pure function of ``(seed, pass)``, so a resumed run continues exactly."""
    n = len(data)
    size = min(size, n)
    per_pass = n // size  # the remainder of each permutation is dropped
    order = np.random.default_rng([seed, i // per_pass]).permutation(n)
    pick = torch.from_numpy(order[(i % per_pass) * size : (i % per_pass + 1) * size])
    return data.items[pick], torch.from_numpy(data.labels)[pick]


def load_method(run_dir, which: str = "best", params: dict | None = None):
    """Rebuild the method stored in ``run_dir`` (``best`` or ``last`` checkpoint); returns (method, meta).

    ``params`` overrides constructor parameters that do not change the weights, e.g. a transfer
    baseline's ``test_time``."""
    run = Path(run_dir)
    if not run.is_dir():
        raise KshotError(f"run directory {run} does not exist")
    if which not in ("best", "last"):
        raise KshotError(f"checkpoint must be 'best' or 'last', got {which!r}")
    if (run / "best.json").is_file():
        check_manifest(run, read_manifest(run)[1], "episodic-run")
    state, meta, _ = load_checkpoint(run / which)
    meta["method_params"] = {**meta["method_params"], **(params or {})}
    method = build_method(
        meta["method"], meta["item_shape"], meta["backbone"], meta.get("backbone_params"), **meta["method_params"]
    )
    method.load_state_dict(state)
    method.eval()
    return method, meta


def _tensorboard_writer():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise KshotError(
            "TensorBoard logging needs the tensorboard package: pip install 'kshot[tensorboard]'"
        ) from None
    return SummaryWriter
