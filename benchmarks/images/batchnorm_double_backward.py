"""BatchNorm's second derivative on the shapes of a MAML support set: PyTorch's against kshot.images.batchnorm's.

For each input shape: the forward + backward with ``create_graph`` (what the inner loop runs), then the
double backward (what the outer gradient runs through it), median milliseconds of ``--repeats`` runs,
one thread, glibc malloc tuned as in the MAML benchmark.

    python benchmarks/images/batchnorm_double_backward.py [--repeats 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from kshot.core.allocator import tune_allocator
from kshot.images.batchnorm import batch_norm

SHAPES = [(5, 64, 28, 28), (5, 64, 14, 14), (5, 64, 7, 7), (75, 64, 28, 28)]


def timings(fn, shape, repeats: int) -> tuple[float, float]:
    """Median ms of (forward + backward with create_graph, double backward) of ``fn(x, w, b)``."""
    x = torch.randn(*shape).contiguous(memory_format=torch.channels_last).requires_grad_()
    w, b = (torch.rand(shape[1]) + 0.5).requires_grad_(), torch.zeros(shape[1]).requires_grad_()
    gy = torch.randn_like(x).requires_grad_()
    cotangents = (torch.randn_like(x), torch.randn(shape[1]), torch.randn(shape[1]))
    first, second = [], []
    for i in range(repeats + 3):  # 3 warm-up runs
        t0 = time.perf_counter()
        grads = torch.autograd.grad(fn(x, w, b), (x, w, b), gy, create_graph=True)
        t1 = time.perf_counter()
        torch.autograd.grad(grads, (x, w, gy), cotangents)
        t2 = time.perf_counter()
        if i >= 3:
            first.append(t1 - t0)
            second.append(t2 - t1)
    return 1e3 * statistics.median(first), 1e3 * statistics.median(second)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tune_allocator()
    torch_bn = lambda x, w, b: F.batch_norm(x, None, None, w, b, True, 0.0, 1e-5)  # noqa: E731
    ours = lambda x, w, b: batch_norm(x, w, b, 1e-5)  # noqa: E731
    print(
        "| BatchNorm input [N, C, H, W] | forward + backward (create_graph), PyTorch | double backward, PyTorch "
        "| forward + backward, kshot | double backward, kshot |"
    )
    print("|---|---:|---:|---:|---:|")
    for shape in SHAPES:
        (f0, s0), (f1, s1) = timings(torch_bn, shape, args.repeats), timings(ours, shape, args.repeats)
        print(f"| {' x '.join(map(str, shape))} | {f0:.2f} ms | {s0:.2f} ms | {f1:.2f} ms | {s1:.2f} ms |")


if __name__ == "__main__":
    main()
