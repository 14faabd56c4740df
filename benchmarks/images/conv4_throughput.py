"""Conv4 training-step throughput (images/s) against this machine's fp32 matmul GFLOP/s.

Times the real ProtoNet training step (forward over support + query, loss, backward, Adam step)
on 60-way episodes of 28x28 images, for the plain NCHW layout and for kshot's default
channels-last layout, in one run, and records the medians in docs/images.md.

    python benchmarks/images/conv4_throughput.py --shot 1 --repeats 30
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/common.py
from common import doc_page, machine, matmul_gflops, upsert_row  # noqa: E402
from omniglot_protonet import conv4_train_flops_per_image  # noqa: E402

from kshot.images.episodes import Episode  # noqa: E402
from kshot.images.methods import build_method  # noqa: E402


def step_times(layout: str, way: int, shot: int, query: int, repeats: int) -> list[float]:
    torch.manual_seed(0)
    method = build_method("protonet", (1, 28, 28))
    if layout == "nchw":  # the plain PyTorch layout
        method.backbone.channels_last = False
        method = method.to(memory_format=torch.contiguous_format)
    opt = torch.optim.Adam(method.parameters(), 1e-3)
    ar = torch.arange(way)
    ep = Episode(
        torch.rand(way * shot, 1, 28, 28),
        ar.repeat_interleave(shot),
        torch.rand(way * query, 1, 28, 28),
        ar.repeat_interleave(query),
        ar,
    )
    times = []
    for i in range(repeats + 3):
        t = time.perf_counter()
        loss, _ = method.loss(ep)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--way", type=int, default=60)
    p.add_argument("--shot", type=int, default=1)
    p.add_argument("--query", type=int, default=5)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--no-record", action="store_true")
    a = p.parse_args()
    images = a.way * (a.shot + a.query)
    flops = conv4_train_flops_per_image()
    peak = matmul_gflops()
    print(f"{machine()}; fp32 matmul {peak:.1f} GFLOP/s; Conv4 training step {flops / 1e6:.1f} MFLOP/image")
    for layout in ("nchw", "channels_last"):
        times = step_times(layout, a.way, a.shot, a.query, a.repeats)
        med = statistics.median(times)
        q1, _, q3 = statistics.quantiles(times, n=4)
        img_s = images / med
        frac = img_s * flops / 1e9 / peak
        print(
            f"{layout:14s} median step {1000 * med:.1f} ms (IQR {1000 * q1:.1f}-{1000 * q3:.1f}) "
            f"= {img_s:.0f} images/s = {img_s * flops / 1e9:.1f} GFLOP/s = {100 * frac:.1f}% of matmul peak"
        )
        if not a.no_record:
            upsert_row(
                "Conv4 training throughput (ProtoNet step)",
                [
                    "layout / episode",
                    "median step",
                    "images/s",
                    "GFLOP/s",
                    "% of fp32 matmul peak",
                    "matmul peak",
                    "machine",
                    "command",
                ],
                f"{layout}, {a.way}-way {a.shot}-shot {a.query}-query",
                [
                    f"{1000 * med:.1f} ms (IQR {1000 * q1:.1f}-{1000 * q3:.1f}, n={len(times)})",
                    f"{img_s:.0f}",
                    f"{img_s * flops / 1e9:.1f}",
                    f"{100 * frac:.1f}%",
                    f"{peak:.1f} GFLOP/s",
                    machine(),
                    f"`python benchmarks/images/conv4_throughput.py --shot {a.shot} --repeats {a.repeats}`",
                ],
                doc_page("images"),
            )


if __name__ == "__main__":
    main()
