"""Cold start on MovieLens-100K: every kshot.recsys method over the five folds, K in {0,1,3,5,10}, rating and
top-N metrics from the same runs (kshot.recsys.protocol), plus "auto" (the default recommender: the best of
its candidate rankers on the validation users, chosen as Recommender.fit does).

    OMP_NUM_THREADS=1 KSHOT_DATA=/path/to/data python benchmarks/recsys/coldstart.py
    OMP_NUM_THREADS=1 KSHOT_DATA=/path/to/data python benchmarks/recsys/coldstart.py --mode item \\
        --methods popularity group_popularity ease knn rp3beta ials sasrec bias mf --section item

Writes its tables into docs/recsys.md (between this section's markers), the plot
docs/recsys_user.png (docs/recsys_item.png for --section item) and the raw per-user results to
--json. Every method is fitted on the same warm users, tuned on the same validation users and scored on
the same test tasks.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py
from common import machine  # noqa: E402

from kshot.data import load_dataset  # noqa: E402
from kshot.recsys.methods import METHODS, build  # noqa: E402
from kshot.recsys.protocol import SHOTS, evaluate_tasks, make_fold, paired, summarize  # noqa: E402
from kshot.recsys.recommender import AUTO, CANDIDATES, choose  # noqa: E402

DOCS = Path(__file__).resolve().parents[2] / "docs"
META = ("melu", "attention", "melu_rank")  # meta-learned
SEQUENCE = ("gru", "sasrec", "successors")  # read the order of the interactions
NEURAL = META + ("gru", "sasrec", "finetune")
SECTIONS = {"user": "MovieLens-100K user cold start", "item": "MovieLens-100K item cold start"}


def cell(s, digits=3):
    if s is None or s["mean"] is None:
        return "–"
    return f"{s['mean']:.{digits}f}" + (f" ± {s['ci95']:.{digits}f}" if s.get("ci95") else "")


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    data = load_dataset("movielens-100k", "all")
    methods = [m for m in args.methods if m != AUTO]
    per_user = {m: [] for m in args.methods}
    seconds = {m: 0.0 for m in args.methods}
    tuned = {m: [] for m in args.methods}
    start = time.time()
    for f in args.folds:
        fold = make_fold(data, f, seed=0, mode=args.mode)
        fitted = {}
        for name in methods:
            t = time.time()
            method = build(name, seed=f).fit(fold.train, fold.val)
            fit_s = time.time() - t
            per_user[name].append(evaluate_tasks(method, fold.train, fold.test, SHOTS))
            seconds[name] += time.time() - t
            tuned[name].append(method.params)
            fitted[name] = (method, fit_s)
            r = per_user[name][-1]
            print(
                f"fold {f} {name:16s} {time.time() - t:6.1f}s  NDCG@10 K=5 {np.nanmean(r[5]['ndcg10']):.4f} "
                f"K=10 {np.nanmean(r[10]['ndcg10']):.4f}  MAE K=5 {np.nanmean(r[5]['mae']):.3f}  {method.params}",
                flush=True,
            )
        if AUTO in args.methods:  # the same rule as Recommender(method="auto").fit, on the same fits
            cands = {n: fitted[n][0] for n in CANDIDATES}
            chosen, selection = choose(cands, fold.train, fold.val)
            per_user[AUTO].append(per_user[chosen][-1])
            seconds[AUTO] += sum(fitted[n][1] for n in CANDIDATES)
            tuned[AUTO].append({"chosen": chosen, **{f"val_{n}": round(v, 4) for n, v in selection.items()}})
            print(f"fold {f} auto chose {chosen} {selection}", flush=True)
    wall = time.time() - start
    n_items = data.n_items if args.mode != "item" else data.n_users
    summary = {m: summarize(per_user[m], n_items) for m in args.methods}
    return {
        "summary": summary,
        "per_user": per_user,
        "seconds": seconds,
        "tuned": tuned,
        "wall_s": wall,
        "machine": machine(),
        "folds": args.folds,
        "mode": args.mode,
    }


def comparisons(res: dict, methods: list) -> dict:
    out = {}
    pu = res["per_user"]
    if "popularity" in pu:
        for m in [x for x in methods if x != "popularity" and not METHODS.get(x, METHODS["ease"]).predicts_ratings]:
            out[m] = {k: paired(pu[m], pu["popularity"], k) for k in SHOTS}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="*", default=[*METHODS, AUTO])
    ap.add_argument("--folds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    ap.add_argument("--mode", default="user", choices=["user", "item"])
    ap.add_argument("--section", default=None, help="docs section: user (default for --mode user) or item")
    ap.add_argument("--docs", default=str(DOCS / "recsys.md"))
    ap.add_argument("--plot", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--replot", action="store_true", help="only rewrite the docs and plot from --json")
    args = ap.parse_args()
    section = args.section or args.mode
    args.plot = args.plot or str(DOCS / f"recsys_{section}.png")
    args.json = args.json or f"runs/recsys_{section}.json"
    unknown = [m for m in args.methods if m not in METHODS and m != AUTO]
    if unknown:
        sys.exit(f"error: unknown method(s) {', '.join(unknown)}; choose from {', '.join([*METHODS, AUTO])}")
    if AUTO in args.methods and not set(CANDIDATES) <= set(args.methods):
        sys.exit(f"error: auto needs its candidates in --methods: {', '.join(CANDIDATES)}")
    if args.replot:
        res = json.loads(Path(args.json).read_text())
        res["summary"] = {m: {int(k): v for k, v in s.items()} for m, s in res["summary"].items()}
        res["per_user"] = {
            m: [{int(k): {x: np.array(v) for x, v in d.items()} for k, d in f.items()} for f in fs]
            for m, fs in res["per_user"].items()
        }
    else:
        res = run(args)
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, default=lambda x: x.tolist() if hasattr(x, "tolist") else str(x)))
    methods = list(res["summary"])
    plot(res["summary"], methods, args.plot, SECTIONS[res["mode"]])
    write_section(args, section, res, methods)
    print(f"wall time {res['wall_s'] / 60:.1f} min")


def plot(summary, methods, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rating = [m for m in methods if any(summary[m][k]["mae"]["mean"] is not None for k in SHOTS)]
    panels = [("ndcg10", "full-catalogue NDCG@10 (higher is better)", methods)]
    if rating:
        panels.append(("mae", "MAE (lower is better)", rating))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.6), squeeze=False)
    for ax, (metric, label, which) in zip(axes[0], panels):
        for n, m in enumerate(which):
            pts = [(k, summary[m][k][metric]) for k in SHOTS if summary[m][k][metric]["mean"] is not None]
            if pts:
                ax.errorbar(
                    [k for k, _ in pts],
                    [s["mean"] for _, s in pts],
                    yerr=[s["ci95"] or 0 for _, s in pts],
                    marker="o",
                    capsize=2,
                    label=m,
                    linewidth=2.5 if m == AUTO else 1.2,
                    linestyle="--"
                    if m in NEURAL
                    else (":" if METHODS.get(m) and METHODS[m].predicts_ratings and metric == "ndcg10" else "-"),
                    color="black" if m == AUTO else plt.cm.tab20(n % 20),
                )
        ax.set_xlabel("K (the new user's items)")
        ax.set_ylabel(label)
        ax.set_xticks(SHOTS)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle(f"{title}, 5 folds (mean ± 95% CI over test tasks)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def write_section(args, section, res, methods):
    s, mode = res["summary"], res["mode"]
    begin, end = f"<!-- recsys-{section}:begin -->", f"<!-- recsys-{section}:end -->"
    cmd = "OMP_NUM_THREADS=1 KSHOT_DATA=... python benchmarks/recsys/coldstart.py" + (
        "" if mode == "user" else f" --mode {mode} --section {section} --methods {' '.join(methods)}"
    )
    tasks = "test users" if mode == "user" else "test items"
    lines = [
        begin,
        "",
        f"Command: `{cmd}` (folds {res['folds']}, seed 0; {res['machine']}). "
        f"Whole run: **{res['wall_s'] / 60:.1f} min** wall.",
        "",
    ]
    rankers = [m for m in methods if all(s[m][k]["mae"]["mean"] is None for k in SHOTS)]
    raters = [m for m in methods if m not in rankers]
    lines += [
        f"**Full-catalogue NDCG@10**, mean ± 95% CI over {tasks} (all five folds; rankers first, then the "
        "rating predictors ranking by predicted rating):",
        "",
        "| method | " + " | ".join(f"K={k}" for k in SHOTS) + " |",
        "|---|" + "---:|" * len(SHOTS),
    ]
    for m in rankers + raters:
        lines.append(
            f"| {'**auto**' if m == AUTO else m} | " + " | ".join(cell(s[m][k]["ndcg10"]) for k in SHOTS) + " |"
        )
    for k in (5, 10):
        lines += [
            "",
            f"**Top-N at K = {k}**: NDCG@10, Recall@20, MRR (± 95% CI), catalogue coverage of the top-10 "
            "lists, and their popularity (mean share of warm users who rated the recommended items):",
            "",
            "| method | NDCG@10 | Recall@20 | MRR | coverage | popularity |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for m in rankers + raters:
            r = s[m][k]
            lines.append(
                f"| {'**auto**' if m == AUTO else m} | {cell(r['ndcg10'])} | {cell(r['recall20'])} | "
                f"{cell(r['mrr'])} | {r['coverage']['mean']:.3f} | {cell(r['popularity'])} |"
            )
    comp = comparisons(res, methods)
    if comp:
        lines += [
            "",
            "Paired against popularity over the same " + tasks + " (NDCG@10 difference ± 95% CI; ratio of the means):",
            "",
            "| method | " + " | ".join(f"K={k}" for k in SHOTS) + " |",
            "|---|" + "---:|" * len(SHOTS),
        ]
        for m, row in comp.items():
            lines.append(
                f"| {'**auto**' if m == AUTO else m} | "
                + " | ".join(
                    "–" if c["diff"] is None else f"{c['diff']:+.4f} ± {c['ci95'] or 0:.4f} ({c['ratio']:.2f}x)"
                    for c in (row[k] for k in SHOTS)
                )
                + " |"
            )
    if "ease" in methods:
        others = [m for m in methods if m in META + SEQUENCE]
        if others:
            lines += [
                "",
                "Meta-learned and sequence rankers against EASE (paired NDCG@10 difference, ± 95% CI):",
                "",
                "| method | " + " | ".join(f"K={k}" for k in SHOTS) + " |",
                "|---|" + "---:|" * len(SHOTS),
            ]
            for m in others:
                row = [paired(res["per_user"][m], res["per_user"]["ease"], k) for k in SHOTS]
                lines.append(
                    f"| {m} | "
                    + " | ".join("–" if c["diff"] is None else f"{c['diff']:+.4f} ± {c['ci95'] or 0:.4f}" for c in row)
                    + " |"
                )
    if raters:
        lines += [
            "",
            f"**MAE** over the 10 query ratings (per {tasks[5:-1]}, then averaged), mean ± 95% CI:",
            "",
            "| method | " + " | ".join(f"K={k}" for k in SHOTS) + " |",
            "|---|" + "---:|" * len(SHOTS),
        ]
        for m in raters:
            lines.append(f"| {m} | " + " | ".join(cell(s[m][k]["mae"]) for k in SHOTS) + " |")
        lines += [
            "",
            "**RMSE**:",
            "",
            "| method | " + " | ".join(f"K={k}" for k in SHOTS) + " |",
            "|---|" + "---:|" * len(SHOTS),
        ]
        for m in raters:
            lines.append(f"| {m} | " + " | ".join(cell(s[m][k]["rmse"]) for k in SHOTS) + " |")
    n = s[methods[0]][5]["ndcg10"]["n"]
    lines += [
        "",
        f"NDCG@10 counts the {n} {tasks} with a liked query item. Fit + tuning + evaluation seconds, "
        "all folds: " + ", ".join(f"{m} {t:.0f}" for m, t in res["seconds"].items() if m != AUTO) + ".",
    ]
    if AUTO in res["tuned"]:
        lines += [
            "",
            "auto's choice per fold (validation NDCG@10 of each candidate): "
            + "; ".join(
                f"fold {f}: **{t['chosen']}** ("
                + ", ".join(f"{k[4:]} {v}" for k, v in t.items() if k.startswith("val_"))
                + ")"
                for f, t in zip(res["folds"], res["tuned"][AUTO])
            )
            + ".",
        ]
    lines += [
        "",
        "Settings chosen on the validation users (fold 0): "
        + "; ".join(
            f"{m} {res['tuned'][m][0]}" for m in methods if m != AUTO and res["tuned"][m] and res["tuned"][m][0]
        )
        + ".",
        "",
        f"![NDCG@10 and MAE against K]({Path(args.plot).name})",
        "",
        end,
    ]
    path = Path(args.docs)
    text = path.read_text() if path.is_file() else "# Cold-start recommendation\n"
    block = "\n".join(lines)
    if begin in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + f"\n\n## {SECTIONS[mode]}: every method\n\n" + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
