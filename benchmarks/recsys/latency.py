"""Latency of ``Recommender.recommend`` for a new user with 10 ratings, model loaded (median of many calls).

    OMP_NUM_THREADS=1 KSHOT_DATA=/path/to/data python benchmarks/recsys_latency.py

Each model is fitted on MovieLens-100K fold 0's warm users (neural ones with a short training run and no
tuning: latency depends on the network and the test-time steps, not on how long it trained), saved, loaded,
then asked for the top 10 of a test user's first 10 ratings ``--calls`` times.
"""

import argparse
import statistics
import tempfile
import time

import torch

from kshot.data import load_dataset
from kshot.recsys.protocol import make_fold
from kshot.recsys.recommender import Recommender

SETTINGS = {"bias": {}, "itemknn": {}, "mf": {}, "melu": {"train_steps": 20, "test_steps": 2},
            "attention": {"train_steps": 20}, "finetune": {"train_steps": 20, "test_steps": 5}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--methods", nargs="*", default=list(SETTINGS))
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("movielens-100k", "all")
    fold = make_fold(data, 0)
    task = fold.test[0]
    user = {data.item_ids[i]: float(r) for i, r in zip(*task.support(10))}
    for name in args.methods:
        rec = Recommender(name, **SETTINGS[name]).fit(fold.train, tune=False)
        with tempfile.TemporaryDirectory() as tmp:
            rec.save(tmp)
            rec = Recommender.load(tmp)
        rec.recommend(user, k=10)  # warm-up
        times = []
        for _ in range(args.calls):
            t = time.perf_counter()
            rec.recommend(user, k=10)
            times.append(time.perf_counter() - t)
        times.sort()
        print(f"{name:10s} median {1000 * statistics.median(times):6.2f} ms  "
              f"p90 {1000 * times[int(0.9 * len(times))]:6.2f} ms  ({args.calls} calls)", flush=True)


if __name__ == "__main__":
    main()
