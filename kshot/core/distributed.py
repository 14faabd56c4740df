"""Training over several processes: the one ``torch.distributed`` set-up every training loop calls.

A run started by ``torchrun`` (or ``kshot train --nproc N``, which starts torchrun) finds its rank and
world size in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``);
``setup`` joins the process group (gloo on CPU, nccl on CUDA, one GPU per local rank). Without those
variables everything here is a no-op and the loop runs in one process as before.

The loop splits the tasks (or the mini-batch) of a step into contiguous shares, ``share``: rank r of W
takes exactly the tasks the single process would take in its r-th share, each rank's loss is a mean
over its own share, and ``reduce`` sums ``weight * gradient`` over the ranks with ``weight`` = share /
total, so the averaged gradient is the single-process one for any split, even or not. One
optimizer step follows on every rank (same gradient, same state: the weights stay identical), and only
rank 0 writes files (``is_main``).

Failures: every collective runs under a timeout (``KSHOT_DIST_TIMEOUT`` seconds, default 1800) and a
dead or silent peer turns into ``DistributedError`` naming this rank and what it was waiting for, so
a run fails with a message instead of hanging.
"""

from __future__ import annotations

import atexit
import datetime
import os
import signal
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import KshotError

DEFAULT_TIMEOUT_S = 1800.0


class DistributedError(KshotError):
    """Another process of a distributed run died or stopped answering (not the user's error: exit 1)."""

    exit_code = 1


@dataclass(frozen=True)
class World:
    """This process's place in the run: ``rank`` of ``size`` processes, its ``device``."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def env_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) outside torchrun."""
    try:
        return (
            int(os.environ.get("RANK", 0)),
            int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)),
        )
    except ValueError as exc:
        raise KshotError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers: {exc}") from None


def timeout_seconds() -> float:
    raw = os.environ.get("KSHOT_DIST_TIMEOUT", str(DEFAULT_TIMEOUT_S))
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise KshotError(f"KSHOT_DIST_TIMEOUT must be a number of seconds > 0, got {raw!r}")
    return value


def setup(device: str = "cpu") -> World:
    """Join the process group when started by torchrun (once per process); the device of this rank.

    CUDA runs use nccl and device ``cuda:LOCAL_RANK``; CPU runs use gloo."""
    rank, size, local_rank = env_world()
    if size <= 1:
        return World(device=device)
    cuda = str(device).startswith("cuda")
    if cuda:
        if local_rank >= torch.cuda.device_count():
            raise KshotError(
                f"local rank {local_rank} has no GPU: {torch.cuda.device_count()} visible; start at "
                "most one process per GPU on each machine"
            )
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        try:
            dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=timeout_seconds()))
        except Exception as exc:  # the rendezvous failed or timed out
            raise DistributedError(
                f"rank {rank} of {size}: cannot join the process group ({_first_line(exc)})"
            ) from None
        atexit.register(_destroy)
    return World(rank, size, local_rank, device)


def finish(world: World) -> None:
    """Leave the process group together: a barrier (no rank tears its connections down while a peer is
    still in a collective, which aborts that peer), then destroy the group."""
    if world.distributed and dist.is_initialized():
        barrier(world, "the end of training")
        _destroy()


def _destroy() -> None:
    if dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # a peer is gone already: nothing left to tidy
            pass


def exit_process(code: int) -> None:
    """End a process with ``code``. A rank started by torchrun leaves through ``os._exit`` once its output is
    flushed: gloo's threads, torn down again by C++ destructors at interpreter exit, sometimes abort the rank
    ("terminate called without an active exception", SIGABRT): a rank that finished (the group was left in
    ``finish``) would fail a run that succeeded, and a rank that printed its error (a peer died) would die
    of a signal instead of exiting with its code."""
    if env_world()[1] > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _collective(world: World, what: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # DistBackendError, RuntimeError from gloo/nccl: a peer died or timed out
        raise DistributedError(
            f"rank {world.rank} of {world.size}: {what} failed: another process of the run died or did not "
            f"answer within {timeout_seconds():.0f} s ({_first_line(exc)}); the last complete checkpoint "
            "is kept, continue with --resume"
        ) from None


def share(total: int, world: World) -> tuple[int, int]:
    """The ``[start, stop)`` of this rank's contiguous share of ``total`` items (the first ``total % size``
    ranks take one more)."""
    base, extra = divmod(total, world.size)
    start = world.rank * base + min(world.rank, extra)
    return start, start + base + (world.rank < extra)


def split_description(total: int, size: int, what: str) -> str:
    """E.g. ``"5 tasks per step over 2 processes: 3 + 2"``."""
    parts = [share(total, World(r, size))[1] - share(total, World(r, size))[0] for r in range(size)]
    return f"{total} {what} per step over {size} processes: {' + '.join(map(str, parts))}"


def reduce(world: World, params, weight: float, extra: list[float] | None = None) -> list[float]:
    """Sum ``weight * p.grad`` over the ranks into every ``p.grad`` (one all-reduce), and the same for
    the numbers in ``extra`` (e.g. the loss); returns the reduced ``extra``. A parameter without a
    gradient on every rank keeps none. No-op (``extra`` returned) in a one-process run."""
    extra = list(extra or [])
    if not world.distributed:
        return extra
    params = list(params)
    device = next((p.grad.device for p in params if p.grad is not None), torch.device(world.device))
    pieces = [
        (p.grad.detach().reshape(-1) * weight if p.grad is not None else torch.zeros(p.numel(), device=device))
        for p in params
    ]
    flags = torch.tensor([float(p.grad is not None) for p in params] + [weight * v for v in extra], device=device)
    flat = torch.cat([*(x.float() for x in pieces), flags])
    _collective(world, "the gradient all-reduce", dist.all_reduce, flat)
    grads, flags = flat[: -len(flags)], flat[-len(flags) :]
    offset = 0
    for i, p in enumerate(params):
        n = p.numel()
        p.grad = grads[offset : offset + n].view_as(p).to(p.dtype) if flags[i] > 0 else None
        offset += n
    return flags[len(params) :].tolist()


def average_buffers(world: World, module: torch.nn.Module, weight: float) -> None:
    """Weighted sum over the ranks of the floating-point buffers (BatchNorm running statistics, a
    running feature mean), so every rank keeps the same module state."""
    if not world.distributed:
        return
    buffers = [b for b in module.buffers() if b.is_floating_point()]
    if not buffers:
        return
    flat = torch.cat([b.detach().reshape(-1).float() * weight for b in buffers])
    _collective(world, "the buffer all-reduce", dist.all_reduce, flat)
    offset = 0
    for b in buffers:
        b.copy_(flat[offset : offset + b.numel()].view_as(b))
        offset += b.numel()


def broadcast_module(world: World, module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank (the same start whatever each rank built)."""
    if not world.distributed:
        return
    for t in [*module.parameters(), *module.buffers()]:
        _collective(world, "broadcasting the initial weights", dist.broadcast, t.data, 0)


def broadcast_flag(world: World, flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (e.g. early stopping decided by rank 0's validation)."""
    if not world.distributed:
        return flag
    t = torch.tensor([float(flag)], device=world.device)
    _collective(world, "waiting for rank 0's validation", dist.broadcast, t, 0)
    return bool(t.item())


def barrier(world: World, what: str) -> None:
    if world.distributed:
        t = torch.zeros(1, device=world.device)
        _collective(world, what, dist.all_reduce, t)  # an all-reduce: a barrier with the group's timeout


# ---- starting the processes: `kshot train --nproc N` ------------------------------------------------


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_nproc(nproc: int, device: str) -> int:
    """``nproc`` when this machine can run that many training processes, else a KshotError saying why."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise KshotError(f"--nproc must be an integer >= 1, got {nproc!r}")
    if env_world()[1] > 1 or "TORCHELASTIC_RUN_ID" in os.environ:
        raise KshotError(
            "--nproc starts torchrun itself, but this process already runs under torchrun "
            f"(WORLD_SIZE={os.environ.get('WORLD_SIZE')}); leave --nproc out"
        )
    if str(device).startswith("cuda"):
        gpus = torch.cuda.device_count()
        if nproc > gpus:
            raise KshotError(
                f"--nproc {nproc} needs one GPU per process, but {gpus} "
                f"{'is' if gpus == 1 else 'are'} visible; use --nproc {max(gpus, 1)} or fewer"
            )
    elif nproc > usable_cores():
        cores = usable_cores()
        raise KshotError(
            f"--nproc {nproc} is more than the {cores} CPU core{'s' if cores > 1 else ''} this "
            "process may use: each process trains on a core of its own, more processes would "
            f"only time-share them; use --nproc {cores} or fewer (or torchrun directly to "
            "oversubscribe on purpose)"
        )
    return nproc


def root_failure(failures: dict) -> tuple:
    """``(rank, failure)`` of the process that most likely caused the others to fail, from torchrun's
    failures (in the order it detected them). kshot's workers write no error file, so every timestamp is
    the second at which torchrun noticed the exit, and a rank that died takes its peers down within that
    second or the next (a broken connection), while torchrun stops the rest with SIGTERM. So: ignore the
    SIGTERM exits (unless nothing else failed), keep the failures noticed within a second of the first,
    and among those prefer one killed by a signal (the OOM killer, a segfault) over one that aborted
    (SIGABRT: gloo aborts a survivor whose peer vanished mid-collective) over one that exited, else the
    first detected."""
    causes = {r: f for r, f in failures.items() if f.exitcode != -signal.SIGTERM} or failures
    first = min(f.timestamp for f in causes.values())
    near = [r for r, f in causes.items() if f.timestamp <= first + 1]
    order = lambda f: 0 if f.exitcode < 0 and -f.exitcode != signal.SIGABRT else 1 if f.exitcode < 0 else 2  # noqa: E731
    rank = min(near, key=lambda r: order(causes[r]))  # min keeps detection order among equals
    return rank, failures[rank]


LAUNCHED = "KSHOT_LAUNCHED"  # set for the processes ``launch`` starts: the launcher reports, they do not


def launched() -> bool:
    """True in a process started by ``launch`` (not in one started by a user's own torchrun)."""
    return os.environ.get(LAUNCHED) == "1"


def launch(nproc: int, args: list[str], script: str | None = None) -> None:
    """Run ``python -m kshot ARGS`` (or ``python SCRIPT ARGS``) in ``nproc`` processes on this machine
    through torchrun's launcher (``--standalone``), and wait. A failed process stops the others; the
    first failure comes back as KshotError (every failed process exited 2: a user error it printed)
    or DistributedError (a crash or a kill)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    if "OMP_NUM_THREADS" not in os.environ:  # the cores shared out, instead of torchrun's notice and 1
        os.environ["OMP_NUM_THREADS"] = str(max(1, usable_cores() // nproc))
    entry = [script] if script else ["-m", "kshot"]
    before = os.environ.get(LAUNCHED)
    os.environ[LAUNCHED] = "1"
    try:
        run(parse_args(["--standalone", "--nproc-per-node", str(nproc), *entry, *args]))
    except ChildFailedError as exc:
        rank, failure = root_failure(exc.failures)
        codes = {f.exitcode for f in exc.failures.values()}
        if codes == {2}:
            raise KshotError(f"rank {rank} stopped with the error printed above") from None
        how = (
            f"was killed by signal {failure.signal_name()}"
            if failure.exitcode < 0
            else f"exited with status {failure.exitcode}"
        )
        raise DistributedError(
            f"training with {nproc} processes failed: rank {rank} {how} (its messages are "
            "above); the other processes were stopped, the last complete checkpoint is "
            "kept, continue with --resume"
        ) from None
    finally:
        if before is None:
            os.environ.pop(LAUNCHED, None)
        else:
            os.environ[LAUNCHED] = before
