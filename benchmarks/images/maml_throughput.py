"""Seconds per MAML meta-iteration and peak memory, for each execution strategy of the inner loop.

The Omniglot MAML configuration of Finn et al. 2017: Conv4 (64 filters, BatchNorm with batch
statistics), 28x28 images, 5-way 1-shot, 15 queries per class, meta-batch 32, 1 inner step, inner lr
0.4, second and first order. Two Conv4 networks: ``stride`` is the paper's Omniglot network (stride-2
convolutions, mean of the last map; learn2learn's ``OmniglotCNN``), ``maxpool`` the Conv4 of the
metric-learning papers (convolutions at full resolution, then 2x2 max-pooling: ~4x the FLOPs). One meta-iteration = ``method.meta_gradients(episode)`` (every task's
inner loop and the meta-gradient) + an Adam step. Each configuration runs in a process of its own
(one warm-up iteration, then ``--iterations`` timed ones; the median is reported), one after the
other, so that one strategy's threads and allocator state cannot slow the next and the peak memory is
that configuration's own.

Strategy ``l2l`` is a reference written the way learn2learn does it (``L2LReference``), so the speed-up
over it is measured in the same run; ``--rounds R`` repeats every configuration R times in turn
(A B A B) and prints the per-round ratios.

    python benchmarks/images/maml_throughput.py [--iterations 5] [--meta-batch 32] [--threads N] [--floor]
                                         [--networks stride,maxpool] [--strategies threads,loop,l2l,...]
                                         [--classes MAML,FOMAML] [--rounds R]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

from kshot.core.allocator import tune_allocator
from kshot.images.backbones import Conv4
from kshot.images.episodes import Episode
from kshot.images.methods import FOMAML, MAML


def random_episode(T: int, way: int = 5, shot: int = 1, query: int = 15, size: int = 28) -> Episode:
    g = torch.Generator().manual_seed(0)
    ar = torch.arange(way)
    return Episode(
        torch.rand(T, way * shot, 1, size, size, generator=g),
        ar.repeat_interleave(shot).repeat(T, 1),
        torch.rand(T, way * query, 1, size, size, generator=g),
        ar.repeat_interleave(query).repeat(T, 1),
        ar.repeat(T, 1),
    )


def reset_peak_rss() -> None:
    try:  # Linux: writing 5 to clear_refs resets the peak resident set size (VmHWM)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_mib() -> float:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Floor:
    """Not meta-learning: one plain forward + backward of Conv4 over every support and query image of
    the meta-batch, task by task, with shared weights. No strategy can do less work than this."""

    def __init__(self, downsample: str):
        self.net = Conv4(hidden=64, track_running_stats=False, downsample=downsample)
        self.head = torch.nn.Linear(64, 5)

    def loss(self, ep):
        total = 0
        for t in range(ep.support.shape[0]):
            for x, y in ((ep.support[t], ep.support_labels[t]), (ep.query[t], ep.query_labels[t])):
                x = x.clone(memory_format=torch.channels_last)
                loss = torch.nn.functional.cross_entropy(self.head(self.net(x)), y)
                loss.backward()
                total += loss.detach()
        return total + 0 * sum(p.sum() for p in self.parameters()), None  # backward() must have work

    def parameters(self):
        return [*self.net.parameters(), *self.head.parameters()]

    def to(self, device):
        self.net.to(device)
        self.head.to(device)
        return self


def l2l_block(cin: int, hidden: int, downsample: str) -> list:
    """A learn2learn-style conv block: conv 3x3, BatchNorm (batch statistics), ReLU, then max-pooling
    (or stride-2 convolution), in PyTorch's default (NCHW) layout."""
    stride = 2 if downsample == "stride" else 1
    layers = [
        torch.nn.Conv2d(cin, hidden, 3, stride=stride, padding=1),
        torch.nn.BatchNorm2d(hidden, track_running_stats=False),
        torch.nn.ReLU(),
    ]
    return layers + ([torch.nn.MaxPool2d(2)] if downsample == "maxpool" else [])


class MeanPool(torch.nn.Module):
    def forward(self, x):
        return x.mean((-2, -1))


def clone_module(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``module`` whose parameters are differentiable clones of the originals (gradients flow
    back to them), the way learn2learn's ``clone_module`` makes a task's learner."""
    clone = copy.copy(module)
    clone.__dict__ = dict(module.__dict__)
    clone._parameters = {n: None if p is None else p.clone() for n, p in module._parameters.items()}
    clone._buffers = dict(module._buffers)
    clone._modules = {n: clone_module(m) for n, m in module._modules.items()}
    return clone


def update_module(module: torch.nn.Module, updates: dict) -> None:
    """Replace the clone's parameter tensors by ``p - lr * grad`` (learn2learn's ``update_module``)."""
    for name, new in updates.items():
        *path, leaf = name.split(".")
        owner = module
        for part in path:
            owner = owner._modules[part]
        owner._parameters[leaf] = new


class L2LReference:
    """The same MAML written the way learn2learn does it (``MAML.clone()`` / ``adapt``): per task, clone
    the module, ``torch.autograd.grad(create_graph=True)`` on the support loss, replace the clone's
    parameters by the updated tensors, query loss, ``backward()`` into the shared weights; the
    gradients are averaged over the meta-batch. Default layout, intra-op threads, no kshot code."""

    def __init__(self, downsample: str, first_order: bool, lr: float = 0.4, steps: int = 1):
        layers = [m for i in range(4) for m in l2l_block(1 if i == 0 else 64, 64, downsample)]
        tail = [MeanPool()] if downsample == "stride" else [torch.nn.Flatten()]
        self.net = torch.nn.Sequential(*layers, *tail, torch.nn.Linear(64, 5))
        self.first_order, self.lr, self.steps = first_order, lr, steps

    def loss(self, ep):
        T, total = ep.support.shape[0], 0.0
        for t in range(T):
            learner = clone_module(self.net)
            for _ in range(self.steps):
                support_loss = torch.nn.functional.cross_entropy(learner(ep.support[t]), ep.support_labels[t])
                names, params = zip(*learner.named_parameters())
                grads = torch.autograd.grad(support_loss, params, create_graph=not self.first_order)
                update_module(learner, {n: p - self.lr * g for n, p, g in zip(names, params, grads)})
            query_loss = torch.nn.functional.cross_entropy(learner(ep.query[t]), ep.query_labels[t])
            (query_loss / T).backward()
            total += query_loss.detach()
        return total / T + 0 * sum(p.sum() for p in self.parameters()), None

    def parameters(self):
        return list(self.net.parameters())

    def to(self, device):
        self.net.to(device)
        return self


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--meta-batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument(
        "--strategies",
        default="threads,loop,vmap,threads+bf16",
        help="comma-separated: threads, loop, vmap, l2l (the learn2learn-style reference), with +compile for torch.compile of the per-task "
        "function (loop only), +bf16 for precision='bf16' (bfloat16 autocast) and/or +torchbn for "
        "PyTorch's own BatchNorm double backward instead of kshot.images.batchnorm's (to time the difference)",
    )
    ap.add_argument(
        "--networks",
        default="stride,maxpool",
        help="comma-separated Conv4 variants: stride (MAML's Omniglot network), maxpool",
    )
    ap.add_argument("--classes", default="MAML,FOMAML", help="comma-separated: MAML (second order), FOMAML")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every configuration this many times, in turn (A B A B ...): medians over rounds "
        "and kshot/learn2learn ratios round by round, for a machine whose speed drifts",
    )
    ap.add_argument("--no-tune-malloc", action="store_true", help="leave glibc malloc's thresholds alone")
    ap.add_argument("--floor", action="store_true", help="also time a plain forward+backward over the same images")
    ap.add_argument("--chunk-size", type=int, default=None, help="vmap chunk size (default: all tasks)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--config", default=None, help=argparse.SUPPRESS)  # run one configuration, print JSON
    args = ap.parse_args()
    configs = []
    for net in args.networks.split(","):
        configs += [
            f"{cls} {s} {net}"
            for cls in ("MAML", "FOMAML")
            for s in args.strategies.split(",")
            if cls in args.classes.split(",")
        ]
        configs += [f"floor fwd+bwd {net}"] if args.floor else []
    if args.config:
        print(json.dumps(measure(args, args.config)))
        return
    runs: dict[str, list[dict]] = {c: [] for c in configs}
    loads = []
    for _ in range(args.rounds):  # A B A B ...: every configuration once per round
        loads.append(os.getloadavg()[0])
        for config in configs:
            cmd = [sys.executable, __file__, "--config", config, *sys.argv[1:]]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{config} failed:\n{done.stderr}")
            out = done.stdout
            runs[config].append(json.loads(out.strip().splitlines()[-1]))
    first = runs[configs[0]][0]
    print(
        f"torch {torch.__version__}, {first['threads']} threads, device {args.device}, load average "
        f"{min(loads):.1f}-{max(loads):.1f} at the rounds' starts, meta-batch {args.meta_batch}, {args.rounds} "
        f"round(s) x {args.iterations} timed iterations: median of the rounds' medians (min-max of all "
        "iterations), one process per configuration and round"
    )
    mem_name = "peak CUDA memory" if args.device.startswith("cuda") else "peak RSS"
    for config, rows in runs.items():
        times = [t for row in rows for t in row["times"]]
        median = statistics.median(row["median_s"] for row in rows)
        print(
            f"{config:28s} {median:7.3f} s/iteration ({min(times):.3f}-{max(times):.3f})"
            f"   {mem_name} {max(row['memory_mib'] for row in rows):,.0f} MiB"
        )
    for config in configs:  # each configuration against the learn2learn-style reference of its class and network
        cls, strategy, net = config.split(" ")
        ref = f"{cls} l2l {net}"
        if strategy != "l2l" and ref in runs and cls != "floor":
            ratios = [r["median_s"] / b["median_s"] for r, b in zip(runs[ref], runs[config])]
            print(
                f"speed-up over learn2learn-style, {config:28s} {statistics.median(ratios):5.2f}x "
                f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)})"
            )
    print(json.dumps(runs))


def measure(args, config: str) -> dict:
    """Warm up, then time ``args.iterations`` meta-iterations of one configuration in this process."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.no_tune_malloc:
        tune_allocator()
    device = torch.device(args.device)
    episode = random_episode(args.meta_batch).to(device)
    torch.manual_seed(0)
    name, strategy, downsample = config.split(" ")
    if name == "floor":
        method = Floor(downsample).to(device)
    elif strategy == "l2l":
        method = L2LReference(downsample, first_order=name == "FOMAML").to(device)
    else:
        if "+torchbn" in strategy:  # what the loop and threads strategies ran before kshot.images.batchnorm
            import kshot.images.backbones

            kshot.images.backbones.cheap_second_order_batch_norm = lambda x, w, b, eps: torch.nn.functional.batch_norm(
                x, None, None, w, b, True, 0.0, eps
            )
        method = {"MAML": MAML, "FOMAML": FOMAML}[name](
            Conv4(hidden=64, track_running_stats=False, downsample=downsample),
            way=5,
            inner_steps=1,
            inner_lr=0.4,
            strategy=strategy.split("+")[0],
            chunk_size=args.chunk_size,
            compile="+compile" in strategy,
            precision="bf16" if "+bf16" in strategy else "fp32",
        ).to(device)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)

    def iteration():
        loss, _ = method.loss(episode)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    iteration()  # warm-up (compiles, when compiling)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    reset_peak_rss()
    times = []
    for _ in range(args.iterations):
        t0 = time.perf_counter()
        iteration()
        times.append(time.perf_counter() - t0)
    mem = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else peak_rss_mib()
    return {
        "config": config,
        "median_s": statistics.median(times),
        "times": times,
        "memory_mib": mem,
        "threads": torch.get_num_threads(),
    }


if __name__ == "__main__":
    main()
