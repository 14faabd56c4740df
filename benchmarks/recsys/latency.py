"""Latency of ``Recommender.recommend`` for a new user with 10 items, model loaded (median of many calls).

    flock /tmp/kshot-timing.lock env OMP_NUM_THREADS=1 KSHOT_DATA=/path/to/data python benchmarks/recsys/latency.py

Each model is fitted on MovieLens-100K fold 0's warm users (the default, ``auto``, as ``kshot recsys train``
fits it; the neural ones with a short training run and no tuning: latency depends on the network and the
test-time steps, not on how long it trained), saved, loaded, then asked for the top 10 of a test user's
first 10 ratings ``--calls`` times, with and without ``--explain``. Writes one row per method into "Latency of
`recommend`" in docs/recsys.md (``--no-doc``: only prints).
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py
from common import doc_page, machine, upsert_row  # noqa: E402

from kshot.data import load_dataset  # noqa: E402
from kshot.recsys.protocol import make_fold  # noqa: E402
from kshot.recsys.recommender import Recommender  # noqa: E402

SHORT = {"train_steps": 20}
SETTINGS = {
    "auto": {},
    "ease": {},
    "successors": {},
    "knn": {},
    "rp3beta": {},
    "ials": {},
    "popularity": {},
    "gru": SHORT,
    "sasrec": SHORT,
    "melu_rank": {**SHORT, "test_steps": 2},
    "bias": {},
    "itemknn": {},
    "mf": {},
    "melu": {**SHORT, "test_steps": 2},
    "attention": SHORT,
    "finetune": {**SHORT, "test_steps": 5},
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--methods", nargs="*", default=list(SETTINGS))
    ap.add_argument("--no-doc", action="store_true", help="print only; do not write docs/recsys.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("movielens-100k", "all")
    fold = make_fold(data, 0)
    task = fold.test[0]
    user = {data.item_ids[i]: float(r) for i, r in zip(*task.support(10))}
    host = machine()
    print(host, flush=True)
    for name in args.methods:
        tune = name == "auto"
        rec = Recommender(name, params=SETTINGS[name] or None).fit(fold.train, fold.val if tune else None, tune=tune)
        with tempfile.TemporaryDirectory() as tmp:
            rec.save(tmp)
            rec = Recommender.load(tmp)
        cells = []
        for explain in (False, True):
            rec.recommend(user, k=10, explain=explain)  # warm-up
            times = []
            for _ in range(args.calls):
                t = time.perf_counter()
                rec.recommend(user, k=10, explain=explain)
                times.append(time.perf_counter() - t)
            times.sort()
            cells += [f"{1000 * statistics.median(times):.2f}", f"{1000 * times[int(0.9 * len(times))]:.2f}"]
        chose = f" (auto chose {rec.chosen_})" if name == "auto" else ""  # one row whatever it chose
        print(
            f"{name + chose:16s} median / p90 ms: {cells[0]} / {cells[1]}; with explain {cells[2]} / {cells[3]}",
            flush=True,
        )
        if not args.no_doc:
            upsert_row(
                "Latency of `recommend`",
                ["method", "median (ms)", "p90 (ms)", "with --explain: median", "p90", "run"],
                name,
                [*cells, f"`latency.py --calls {args.calls}`{chose}, {host}"],
                doc_page("recsys"),
            )


if __name__ == "__main__":
    main()
