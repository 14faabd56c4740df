"""Onboarding on MovieLens-100K: which items to ask a newcomer about first, benchmarked as the elicitation
studies do (Rashid et al., IUI 2002). For every test user of the five user-cold-start folds, the default
recommender (Recommender(), method "auto", fitted on the fold's warm users) runs an onboarding session; the
simulated newcomer answers from their own history outside the query (their rating) and says "not seen"
otherwise. After N answered questions the session's top 10 is scored against the user's query (the last 10
ratings, liked = rated >= 4), like every cold-start number; the baseline is the protocol's own support,
the user's first N items in time.

    OMP_NUM_THREADS=1 KSHOT_DATA=/path/to/data python benchmarks/recsys/onboarding.py

Writes its section of docs/recsys.md and docs/recsys_onboarding.png (NDCG@10 against N, one line per way
of choosing the items).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py
from common import machine  # noqa: E402

from kshot.data import load_dataset  # noqa: E402
from kshot.recsys.onboarding import STRATEGIES  # noqa: E402
from kshot.recsys.protocol import Task, item_share, make_fold, paired, stat, task_metrics  # noqa: E402
from kshot.recsys.recommender import Recommender  # noqa: E402

DOCS = Path(__file__).resolve().parents[2] / "docs"
BEGIN, END = "<!-- recsys-onboarding:begin -->", "<!-- recsys-onboarding:end -->"
FIRST = "first N in time"


def simulate(rec, task, history: dict, strategy: str, n: int, features, share) -> tuple[list, list]:
    """NDCG@10 after 1..n questions and the number of seen answers, for one simulated newcomer."""
    session = rec.onboard(strategy, features)
    query = set(task.query_items.tolist())
    out, seen = [], []
    for _ in range(n):
        row = session.ask(1)[0]
        pos = rec.item_position(row["item"])
        session.answer(row["item"], history.get(pos) if pos not in query else None)
        items, ratings = session.support()
        scores = rec.method_.predict_items(items, ratings, session.features)
        t = Task(task.user, items, ratings, task.query_items, task.query_ratings)
        out.append(task_metrics(scores, t, len(items), False, positive=4.0, item_share=share)["ndcg10"])
        seen.append(len(items))
    return out, seen


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    ap.add_argument("--n", type=int, default=10, help="questions asked")
    ap.add_argument("--docs", default=str(DOCS / "recsys.md"))
    ap.add_argument("--plot", default=str(DOCS / "recsys_onboarding.png"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    data = load_dataset("movielens-100k", "all")
    rows = data.user_rows()
    ways = (*STRATEGIES, FIRST)
    ndcg = {w: [] for w in ways}  # per fold: [users, n]
    seen = {w: [] for w in STRATEGIES}
    chosen = []
    for f in args.folds:
        fold = make_fold(data, f, seed=0, shots=(0, 1, 3, 5, args.n))
        rec = Recommender(seed=f).fit(fold.train, fold.val)
        chosen.append(rec.chosen_)
        share = item_share(fold.train)
        per = {w: [] for w in ways}
        per_seen = {w: [] for w in STRATEGIES}
        for task in fold.test:
            r = rows[task.user]
            history = dict(zip(data.items[r].tolist(), data.ratings[r].tolist()))
            features = data.user_features[task.user]
            for w in STRATEGIES:
                v, s = simulate(rec, task, history, w, args.n, features, share)
                per[w].append(v)
                per_seen[w].append(s)
            per[FIRST].append(
                [
                    task_metrics(
                        rec.method_.predict_items(*task.support(k), features),
                        task,
                        k,
                        False,
                        positive=4.0,
                        item_share=share,
                    )["ndcg10"]
                    for k in range(1, args.n + 1)
                ]
            )
        for w in ways:
            ndcg[w].append(np.array(per[w]))
        for w in STRATEGIES:
            seen[w].append(np.array(per_seen[w]))
        print(
            f"fold {f} ({rec.chosen_}): " + ", ".join(f"{w} {np.nanmean(ndcg[w][-1][:, -1]):.4f}" for w in ways),
            flush=True,
        )
    wall = time.time() - start
    plot(ndcg, args)
    write(args, ndcg, seen, chosen, wall)
    print(f"wall time {wall / 60:.1f} min")


def _as_fold_dicts(per_fold: list, col: int) -> list:
    return [{0: {"ndcg10": a[:, col]}} for a in per_fold]


def write(args, ndcg, seen, chosen, wall):
    n = args.n
    ways = list(ndcg)
    cols = [c for c in (1, 3, 5, n) if c <= n]
    lines = [
        BEGIN,
        "",
        f"Command: `OMP_NUM_THREADS=1 KSHOT_DATA=... python benchmarks/recsys/onboarding.py` (folds "
        f"{args.folds}; the recommender auto chose {', '.join(sorted(set(chosen)))}; {machine()}). Whole run: "
        f"**{wall / 60:.1f} min** wall.",
        "",
        "**NDCG@10 after N questions**, mean ± 95% CI over the test users (all five folds):",
        "",
        "| items asked | " + " | ".join(f"N={c}" for c in cols) + " | seen of N (mean) |",
        "|---|" + "---:|" * (len(cols) + 1),
    ]
    for w in ways:
        a = np.concatenate(ndcg[w])
        cells = [stat(a[:, c - 1]) for c in cols]
        seen_n = f"{np.concatenate(seen[w])[:, -1].mean():.1f} of {n}" if w in seen else f"{n} of {n}"
        lines.append(f"| {w} | " + " | ".join(f"{s['mean']:.4f} ± {s['ci95']:.4f}" for s in cells) + f" | {seen_n} |")
    lines += [
        "",
        "Paired against the first N items in time (same users): NDCG@10 difference ± 95% CI (ratio):",
        "",
        "| items asked | " + " | ".join(f"N={c}" for c in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for w in STRATEGIES:
        row = [paired(_as_fold_dicts(ndcg[w], c - 1), _as_fold_dicts(ndcg[FIRST], c - 1), 0) for c in cols]
        lines.append(
            f"| {w} | " + " | ".join(f"{r['diff']:+.4f} ± {r['ci95']:.4f} ({r['ratio']:.2f}x)" for r in row) + " |"
        )
    lines += ["", "![NDCG@10 against the number of questions](recsys_onboarding.png)", "", END]
    path = Path(args.docs)
    text = path.read_text() if path.is_file() else "# Cold-start recommendation\n"
    block = "\n".join(lines)
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n## Onboarding: the first questions to ask\n\n" + block + "\n"
    path.write_text(text)


def plot(ndcg, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.4))
    x = np.arange(1, args.n + 1)
    for w, per in ndcg.items():
        a = np.concatenate(per)
        s = [stat(a[:, i]) for i in range(args.n)]
        ax.errorbar(
            x,
            [v["mean"] for v in s],
            yerr=[v["ci95"] for v in s],
            marker="o",
            capsize=2,
            label=w,
            linestyle="--" if w == FIRST else "-",
        )
    ax.set_xlabel("N (questions asked; for 'first N in time': the user's first N items)")
    ax.set_ylabel("full-catalogue NDCG@10")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Onboarding on MovieLens-100K, 5 folds (mean ± 95% CI over users)")
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)


if __name__ == "__main__":
    main()
