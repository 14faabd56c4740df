"""User cold start on MovieLens-100K: every kshot.recsys method over the five folds, K in {0,1,3,5,10}.

    OMP_NUM_THREADS=1 KSHOT_DATA=/path/to/data python benchmarks/recsys_coldstart.py

Writes the tables into docs/recsys.md (between the recsys markers), the plot docs/recsys_coldstart.png
and the raw summaries to --json. Every method is fitted on the same warm users, tuned on the same
validation users and scored on the same test tasks (kshot.recsys.protocol).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from pathlib import Path

import numpy as np
import torch

from kshot.data import load_dataset
from kshot.core.stats import ci95
from kshot.recsys.methods import METHODS, build
from kshot.recsys.protocol import SHOTS, evaluate_tasks, make_fold, summarize

META = ("melu", "attention")  # the meta-learned methods
NEURAL = META + ("finetune",)
BEGIN, END = "<!-- recsys-coldstart:begin -->", "<!-- recsys-coldstart:end -->"


def cell(s, digits=3):
    return "–" if s["mean"] is None else f"{s['mean']:.{digits}f} ± {s['ci95']:.{digits}f}"


def paired(per_user: dict, a: str, b: str, k: int, metric: str) -> dict:
    x = np.concatenate([f[k][metric] for f in per_user[a]])
    y = np.concatenate([f[k][metric] for f in per_user[b]])
    ok = np.isfinite(x) & np.isfinite(y)
    d = x[ok] - y[ok]
    return {"diff": float(d.mean()), "ci95": ci95(d), "n": int(ok.sum())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", nargs="*", default=list(METHODS))
    ap.add_argument("--folds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    ap.add_argument("--results", default="docs/recsys.md", help="docs page whose recsys-coldstart block is rewritten")
    ap.add_argument("--plot", default="docs/recsys_coldstart.png")
    ap.add_argument("--json", default="runs/recsys_coldstart.json")
    ap.add_argument("--replot", action="store_true", help="only redraw the plot from --json")
    args = ap.parse_args()
    if args.replot:
        summary = json.loads(Path(args.json).read_text())["summary"]
        summary = {m: {int(k): v for k, v in s.items()} for m, s in summary.items()}
        return plot(summary, list(summary), args.plot)
    torch.set_num_threads(1)
    start = time.time()
    data = load_dataset("movielens-100k", "all")
    per_user = {m: [] for m in args.methods}
    timing = {m: 0.0 for m in args.methods}
    tuned = {m: [] for m in args.methods}
    for f in args.folds:
        fold = make_fold(data, f, seed=0)
        for name in args.methods:
            t = time.time()
            method = build(name, seed=f).fit(fold.train, fold.val)
            per_user[name].append(evaluate_tasks(method, fold.train, fold.test, SHOTS))
            timing[name] += time.time() - t
            tuned[name].append(method.params)
            print(f"fold {f} {name:11s} {time.time() - t:6.1f}s  {method.params}  MAE@5 "
                  f"{np.nanmean(per_user[name][-1][5]['mae']):.3f}  NDCG10@5 "
                  f"{np.nanmean(per_user[name][-1][5]['ndcg10']):.3f}", flush=True)
    wall = time.time() - start
    summary = {m: summarize(per_user[m]) for m in args.methods}
    baselines = [m for m in args.methods if m not in NEURAL]
    rating_baselines = [m for m in baselines if build(m).predicts_ratings]
    comparisons = {}
    for k in (5, 10):
        for metric, pool, better in (("mae", rating_baselines, min), ("ndcg10", baselines, max)):
            meta = [m for m in args.methods if m in META]
            if not meta or not pool:
                continue
            best_b = better(pool, key=lambda m: summary[m][k][metric]["mean"])
            best_m = better(meta, key=lambda m: summary[m][k][metric]["mean"])
            comparisons[f"{metric}@K={k}"] = {"meta": best_m, "baseline": best_b,
                                              **paired(per_user, best_m, best_b, k, metric)}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"summary": summary, "comparisons": comparisons, "wall_s": wall,
                                           "fit_eval_s": timing, "tuned": tuned}, indent=1, default=str))
    plot(summary, args.methods, args.plot)
    write_section(args, summary, comparisons, wall, timing, tuned)
    print(f"wall time {wall:.0f} s")


def plot(summary, methods, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric, label in ((axes[0], "mae", "MAE (lower is better)"),
                              (axes[1], "ndcg10", "full-catalogue NDCG@10 (higher is better)")):
        for n, m in enumerate(methods):
            pts = [(k, summary[m][k][metric]) for k in SHOTS if summary[m][k][metric]["mean"] is not None]
            if pts:
                ax.errorbar([k for k, _ in pts], [s["mean"] for _, s in pts], yerr=[s["ci95"] for _, s in pts],
                            marker="o", capsize=2, label=m, linestyle="--" if m in NEURAL else "-",
                            color=plt.cm.tab20(2 * n % 20 + n // 10))
        ax.set_xlabel("K (support ratings of the new user)")
        ax.set_ylabel(label)
        ax.set_xticks(SHOTS)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, ncol=2)
    fig.suptitle("MovieLens-100K user cold start, 5 folds (mean ± 95% CI over test users)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def write_section(args, summary, comparisons, wall, timing, tuned):
    lines = [BEGIN, "", "Command: `OMP_NUM_THREADS=1 KSHOT_DATA=... python benchmarks/recsys_coldstart.py` "
             f"(folds {args.folds}, seed 0; {platform.machine()} CPU, 2 cores shared with other jobs, "
             f"torch {torch.__version__}). Whole run: **{wall / 60:.1f} min** wall.", ""]
    for metric, title in (("mae", "MAE over the 10 query ratings (per user, then averaged)"),
                          ("rmse", "RMSE over the 10 query ratings (per user, then averaged)"),
                          ("ndcg10", "Full-catalogue NDCG@10 (candidates: all items not in the support; "
                                     "positives: query items rated >= 4)"),
                          ("recall10", "Full-catalogue Recall@10"),
                          ("ndcg5", "nDCG@5 within the 10 query items")):
        lines += [f"**{title}**, mean ± 95% CI over test users (all five folds):", "",
                  "| method | " + " | ".join(f"K={k}" for k in SHOTS) + " |",
                  "|---|" + "---:|" * len(SHOTS)]
        for m in args.methods:
            lines.append(f"| {m} | " + " | ".join(cell(summary[m][k][metric]) for k in SHOTS) + " |")
        if metric == "ndcg5":
            lines.append("| *random order* | " + " | ".join(cell(summary[args.methods[0]][k]["ndcg5_random"])
                                                             for k in SHOTS) + " |")
        lines.append("")
    n = summary[args.methods[0]][5]["mae"]["n"]
    lines += [f"Test users: {n} (each user is a test user in exactly one fold). The per-fold spread "
              "(mean ± 95% CI over the 5 fold means) is in the JSON output.", ""]
    lines += ["Meta-learned (best of melu, attention) against the best baseline, paired over the same test "
              "users (difference meta − baseline, ± 95% CI):", "",
              "| comparison | meta | baseline | difference | users |", "|---|---|---|---:|---:|"]
    for key, c in comparisons.items():
        lines.append(f"| {key} | {c['meta']} | {c['baseline']} | {c['diff']:+.4f} ± {c['ci95']:.4f} | {c['n']} |")
    lines += ["", "Fit + tuning + evaluation seconds per method, all folds: "
              + ", ".join(f"{m} {t:.0f}" for m, t in timing.items()) + ".", "",
              "Settings chosen on the validation users (fold 0): "
              + "; ".join(f"{m} {tuned[m][0]}" for m in args.methods if tuned[m][0]) + ".", "",
              "![metric against K](recsys_coldstart.png)", "", END]
    path = Path(args.results)
    text = path.read_text() if path.is_file() else ""
    block = "\n".join(lines)
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n## Cold-start recommendation: MovieLens-100K user cold start (issue 14)\n\n" + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
