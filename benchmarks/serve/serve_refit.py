"""What one added example costs the service's head: the warm-started logistic refit, in-process.

Fits the demo model (8 intents x 5 examples, packaged MiniLM, logistic head), then adds the texts that
``serve_load.py`` adds (labels ``load_0..2`` that the texts do not predict, the hard case for the
solver) one at a time through ``fit_embeddings(add=True, max_iter=cap)``, as ``kshot serve`` does, and
prints the median milliseconds per add, the solver's iterations and how far the capped head's
predictions are from a head solved to convergence on the same rows.

    PYTHONPATH=. HF_HUB_OFFLINE=1 python benchmarks/serve/serve_refit.py --caps 0 30 10
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from kshot.core import heads
from kshot.text import FewShotClassifier
from kshot.text.demo import demo_data

WORDS = "card account order refund delivery password address app fee transfer".split()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--caps", type=int, nargs="+", default=[0, 30, 10], help="solver iterations per add (0: no cap)")
    ap.add_argument("--adds", type=int, default=150)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    iterations = []
    solve = heads.minimize

    def counted(*a, **k):
        res = solve(*a, **k)
        iterations.append(res.nit)
        return res

    heads.minimize = counted
    texts, labels, _, _ = demo_data()
    clf = FewShotClassifier(method="logistic").fit(texts, labels)
    adds = [
        f"question {i} from client {i % 16} about my {WORDS[i % 10]} and {WORDS[(i * 7) % 10]}"
        for i in range(args.adds)
    ]
    E = clf.embed(adds)
    for cap in args.caps:
        c, times = copy.deepcopy(clf), []
        iterations.clear()
        for i in range(args.adds):
            t = time.perf_counter()
            c.fit_embeddings(E[i : i + 1], [f"load_{i % 3}"], add=True, max_iter=cap or None)
            times.append(time.perf_counter() - t)
        per_add = list(iterations)
        converged = copy.deepcopy(c)
        converged.head_.refit(max_iter=1000)
        agree = float((c.proba_embeddings(E).argmax(1) == converged.proba_embeddings(E).argmax(1)).mean())
        print(
            f"cap {cap or 'none'}: {np.median(times) * 1000:.1f} ms per add (median of {args.adds}), "
            f"solver iterations median {np.median(per_add):.0f} max {max(per_add)}, "
            f"predictions on the added texts equal to a converged head's: {agree:.1%}"
        )


if __name__ == "__main__":
    main()
