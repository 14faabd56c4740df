"""Does encoding a large text pool pay off split over processes? One share of the pool per call.

    python benchmarks/text/encode_processes.py --part 0 --parts 1 --threads 2          # one process, 2 threads
    python benchmarks/text/encode_processes.py --part R --parts 2 --threads 1 (R = 0, 1, side by side)

Each call loads the sentence encoder and encodes its contiguous share of the first ``--n`` BANKING77
training texts (no cache: a fresh process), the way a multi-process self-training or evaluation run
would; time the calls as whole processes.
"""

from __future__ import annotations

import argparse
import csv
import os

import torch

from kshot.data import data_root
from kshot.text import SentenceEncoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", type=int, default=0)
    ap.add_argument("--parts", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with open(os.path.join(data_root(None), "banking77", "train.csv"), newline="") as f:
        texts = [row[0] for row in csv.reader(f)][1 : args.n + 1]
    base, extra = divmod(len(texts), args.parts)
    start = args.part * base + min(args.part, extra)
    share = texts[start : start + base + (args.part < extra)]
    print(SentenceEncoder().encode(share).shape)


if __name__ == "__main__":
    main()
