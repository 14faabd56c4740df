"""Reproduce Prototypical Networks on Omniglot (Snell et al. 2017) and record it in docs/images.md.

Trains one model per shot (60-way episodes, 5 queries per class, Adam 1e-3 halved every 2,000
episodes), keeps the checkpoint with the best 5-way validation accuracy, then scores it on 1,000
fixed test episodes (15 queries, seed 0) at 5-way and 20-way. Also measures the Conv4 training
throughput (images/s) against this machine's fp32 matrix-multiply GFLOP/s, in the same run.

    python benchmarks/images/omniglot_protonet.py --shot 1 --episodes 6000 --out runs/protonet-1shot
    python benchmarks/images/omniglot_protonet.py --shot 1 --episodes 6000 --out runs/protonet-1shot --resume

The paper's protocol has two phases: train on ``train`` until validation stops improving (phase 1),
then train a fresh model on ``trainval`` (train + validation classes) for that many episodes and test
its last checkpoint (phase 2, ``--train-split trainval``: the validation classes are then training
classes, so the validation score is no guide and the last checkpoint is scored).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/common.py
from common import doc_page, machine, matmul_gflops, upsert_row  # noqa: E402

import kshot  # noqa: E402
from kshot.images.backbones import Conv4  # noqa: E402


def conv4_train_flops_per_image(image_size: int = 28) -> float:
    """Forward multiply-adds of Conv4 counted by hooks; a training step costs ~3x the forward."""
    net, macs = Conv4(image_size=image_size), []

    def hook(mod, inp, out):
        macs.append(out[0].numel() * mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1])

    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(hook)
    net(torch.zeros(1, 1, image_size, image_size))
    first = macs[0]
    return 2 * (3 * sum(macs) - first)  # no input gradient for the first layer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shot", type=int, default=1)
    p.add_argument("--train-way", type=int, default=60)
    p.add_argument("--query", type=int, default=5)
    p.add_argument("--episodes", type=int, default=6000)
    p.add_argument("--val-every", type=int, default=1000)
    p.add_argument("--test-episodes", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    p.add_argument(
        "--train-split",
        choices=("train", "trainval"),
        default="train",
        help="trainval: phase 2 of the paper's protocol (scores the last checkpoint)",
    )
    p.add_argument("--no-record", action="store_true", help="do not write docs/images.md")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    out = Path(a.out or f"runs/protonet-{a.shot}shot")

    gflops = matmul_gflops()
    print(f"machine: {machine()}; fp32 matmul {gflops:.1f} GFLOP/s")
    cfg = kshot.TrainConfig(
        method="protonet",
        dataset="omniglot",
        way=a.train_way,
        shot=a.shot,
        query=a.query,
        episodes=a.episodes,
        lr=1e-3,
        lr_step=2000,
        lr_gamma=0.5,
        val_way=5,
        val_query=15,
        val_every=a.val_every,
        val_episodes=300,
        seed=a.seed,
        data_root=a.data_root,
        train_split=a.train_split,
    )
    wall = time.perf_counter()
    summary = kshot.meta_train(cfg, out, resume=a.resume)
    wall = time.perf_counter() - wall
    images = summary["episodes"] * a.train_way * (a.shot + a.query)
    img_s = images / summary["train_seconds"]
    flops = conv4_train_flops_per_image()
    frac = img_s * flops / 1e9 / gflops
    print(
        f"training: {summary['episodes']} episodes, {summary['train_seconds']:.0f} s of steps "
        f"(this sitting's wall time {wall:.0f} s); {img_s:.0f} images/s = {img_s * flops / 1e9:.1f} "
        f"GFLOP/s = {100 * frac:.0f}% of matmul peak {gflops:.1f} GFLOP/s"
    )

    which = "last" if a.train_split == "trainval" else "best"
    method, meta = kshot.load_method(out, which)
    test = kshot.load_dataset("omniglot", "test", root=a.data_root)
    for way in (5, 20):
        score = kshot.evaluate(
            method, test, way=way, shot=a.shot, query=15, episodes=a.test_episodes, seed=0, progress=True
        )
        print(f"{way}-way {a.shot}-shot: {score}")
        if a.no_record:
            continue
        cmd = f"python benchmarks/images/omniglot_protonet.py --shot {a.shot} --episodes {a.episodes} --out {out}" + (
            " --train-split trainval" if a.train_split == "trainval" else ""
        )
        upsert_row(
            "Prototypical Networks on Omniglot (Vinyals split)",
            ["setting", "accuracy (%)", "paper", "training episodes", "training time", "machine", "command"],
            f"{way}-way {a.shot}-shot",
            [
                f"{100 * score.accuracy:.2f} ± {100 * score.ci95:.2f} (n={score.n})",
                {(5, 1): "98.8", (5, 5): "99.7", (20, 1): "96.0", (20, 5): "98.9"}[(way, a.shot)],
                f"{summary['episodes']} ({a.train_way}-way, {a.query} queries; "
                + ("train+val, last checkpoint)" if which == "last" else f"best val at {meta['episodes_done']})"),
                f"{summary['train_seconds'] / 60:.1f} min",
                machine(),
                f"`{cmd}`",
            ],
            doc_page("images"),
        )


if __name__ == "__main__":
    main()
