"""Few-shot intent classification on BANKING77 and CLINC150 with a MiniLM-L6 sentence encoder.

For K in --shots and each seed, K training examples per class are drawn from the training split
(nested: the K=1 draw is inside the K=5 draw of the same seed) and a FewShotClassifier is fitted on
them; it is scored on the full test split. CLINC150 also reports out-of-scope recall with a reject
threshold chosen on held-out data (2 in-scope val texts per class + the 100 oos_val texts).
``--unlabeled`` adds self-training: the rest of the training split, without its labels (CLINC150: plus
its 100 ``oos_train`` texts), is the unlabelled pool given to ``fit``. ``--knn K`` blends the head with a
vote of the K nearest training rows (labelled + pseudo-labelled); the row then also holds
``accuracy_no_knn``, the same fitted classifier scored without the vote (a paired comparison).

    KSHOT_DATA=/work/shared/data .venv/bin/python benchmarks/text/text_intents.py --dataset banking77 \
        --methods prototype logistic --shots 1 5 10 --seeds 0 1 2 3 4

Frozen embeddings are cached on disk (--cache, default runs/text_cache) so that reruns do not encode.
Results (one JSON line per run) are appended to --log; --summary prints the mean ± std table.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository

from kshot.data import load_dataset  # noqa: E402
from kshot.text import FewShotClassifier, SentenceEncoder, choose_threshold  # noqa: E402
from kshot.text.encoder import load_cache, save_cache  # noqa: E402


def few_shot_indices(labels: np.ndarray, k: int, seed: int, kmax: int = 10) -> np.ndarray:
    """K indices per class: the first K of a seeded permutation of that class (nested in K)."""
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        out.extend(rng.permutation(idx)[:kmax][:k])
    return np.sort(np.array(out))


def held_out(dataset: str, root, seed: int = 0):
    """CLINC150 threshold data: 2 val texts per intent (in scope) + all oos_val texts."""
    val = load_dataset(dataset, "val", root=root)
    oos = load_dataset(dataset, "oos_val", root=root)
    idx = few_shot_indices(val.labels, 2, seed + 1000, kmax=2)
    texts = [val.items[i] for i in idx] + list(oos.items)
    labels = [val.class_names[val.labels[i]] for i in idx] + ["oos"] * len(oos)
    return texts, labels


def data_for(dataset: str, root):
    train = load_dataset(dataset, "train", root=root)
    test = load_dataset(dataset, "test", root=root)
    oos = load_dataset(dataset, "oos_test", root=root) if dataset == "clinc150" else None
    return train, test, oos


def unlabeled_pool(dataset: str, root, train, idx: np.ndarray) -> list[str]:
    """The training texts not drawn as labelled examples (and CLINC150's oos_train texts), labels dropped."""
    rest = np.setdiff1d(np.arange(len(train)), idx)
    extra = list(load_dataset(dataset, "oos_train", root=root).items) if dataset == "clinc150" else []
    return [train.items[i] for i in rest] + extra


def precompute(dataset: str, root, encoder: SentenceEncoder, seeds, cache: Path, pool: bool = False) -> None:
    """Encode every text the frozen runs need (train draws or the whole training split, test, oos,
    held-out) and save the cache."""
    train, test, oos = data_for(dataset, root)
    texts = list(test.items)
    for seed in seeds:
        texts += [train.items[i] for i in few_shot_indices(train.labels, 10, seed)]
    if pool:
        texts += unlabeled_pool(dataset, root, train, np.zeros(0, dtype=np.int64))
    if oos is not None:
        texts += list(oos.items) + held_out(dataset, root)[0]
    t = time.perf_counter()
    encoder.encode(texts)
    cache.parent.mkdir(parents=True, exist_ok=True)
    n = save_cache(cache)
    print(f"encoded {len(set(texts))} texts in {time.perf_counter() - t:.0f} s; cache holds {n}", flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(args, train, test, oos, held, method: str, k: int, seed: int) -> dict:
    idx = few_shot_indices(train.labels, k, seed)
    texts = [train.items[i] for i in idx]
    labels = [train.class_names[train.labels[i]] for i in idx]
    clf = FewShotClassifier(
        method=method,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        loss=args.loss,
        C=args.C,
        prior_weight=args.prior_weight,
        seed=seed,
        label_examples=args.label_examples,
        pseudo_per_class=args.pseudo_per_class,
        self_training_rounds=args.rounds,
        knn=args.knn,
        knn_weight=args.knn_weight,
        progress=args.progress,
    )
    pool = unlabeled_pool(args.dataset, args.data_root, train, idx) if args.unlabeled else None
    start = time.perf_counter()
    clf.fit(texts, labels, unlabeled=pool)
    fit_s = time.perf_counter() - start
    truth = np.array([test.class_names[y] for y in test.labels], dtype=object)
    pred = clf.predict(list(test.items))
    row = {
        "dataset": test.name,
        "method": method,
        "tag": args.tag,
        "k": k,
        "seed": seed,
        "accuracy": float(np.mean(pred == truth)),
        "fit_seconds": round(fit_s, 2),
        "eval_seconds": round(time.perf_counter() - start - fit_s, 2),
        "peak_rss_mb": round(peak_rss_mb()),
        "steps": args.steps if method in ("setfit", "finetune") else 0,
        "unlabeled": len(pool or []),
        "pseudo_labels": getattr(clf, "n_pseudo_labels_", 0),
    }
    if pool:
        row.update(pseudo_per_class=args.pseudo_per_class, rounds=args.rounds)
    if args.knn:
        clf.head_.params["knn"] = 0  # the same fit without the neighbour vote
        row.update(
            knn=args.knn,
            knn_weight=args.knn_weight,
            accuracy_no_knn=float(np.mean(clf.predict(list(test.items)) == truth)),
        )
        clf.head_.params["knn"] = args.knn
    if oos is not None:
        t = choose_threshold(clf, *held)
        kept = clf.predict(list(test.items), reject_below=t)
        row.update(
            threshold=round(t, 4),
            inscope_accuracy_with_reject=float(np.mean(kept == truth)),
            oos_recall=float(np.mean(clf.predict(list(oos.items), reject_below=t) == "oos")),
        )
    return row


def mean_std(values: np.ndarray) -> str:
    """``mean ± sample std``; a single run has no spread to report."""
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}" if len(values) > 1 else f"{values.mean():.1f}"


def summary(log: Path) -> None:
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:  # self-training runs group apart from the others and by their settings, whatever their tag
        st = (r.get("pseudo_per_class", 80), r.get("rounds", 4)) if r.get("unlabeled") else ()  # older rows: defaults
        knn = (r["knn"], r["knn_weight"]) if r.get("knn") else ()
        key = (r["dataset"], r["method"], r.get("tag", ""), r["k"], r.get("steps", 0), st, knn)
        groups.setdefault(key, []).append(r)
    print(
        "| dataset | method | K | steps | seeds | accuracy % (mean ± std) | fit s/run | peak RSS MB "
        "| in-scope acc w/ reject % | OOS recall % |"
    )
    print("|---|---|---:|---:|---:|---|---:|---:|---|---|")
    for (ds, method, tag, k, steps, st, knn), rs in sorted(groups.items()):
        acc = 100 * np.array([r["accuracy"] for r in rs])
        fit = np.mean([r["fit_seconds"] for r in rs])
        extra = ["", ""]
        if "oos_recall" in rs[0]:
            ins = 100 * np.array([r["inscope_accuracy_with_reject"] for r in rs])
            rec = 100 * np.array([r["oos_recall"] for r in rs])
            extra = [mean_std(ins), mean_std(rec)]
        name = method + (" + label examples" if tag.startswith("label-examples") else "")
        rest = tag.removeprefix("label-examples").strip(",")
        if rest.startswith("self-training") or st:
            name += " + self-training" + ("" if st in ((), (80, 4)) else f" ({st[0]} per class, {st[1]} rounds)")
            rest = rest.removeprefix("self-training").strip(",")
        name += f" ({rest})" if rest else ""
        if knn:
            base = 100 * np.array([r["accuracy_no_knn"] for r in rs])
            name += f" + knn {knn[0]} (weight {knn[1]}; without: {mean_std(base)})"
        rss = max(r["peak_rss_mb"] for r in rs)
        print(
            f"| {ds} | {name} | {k} | {steps or '-'} | {len(rs)} | {mean_std(acc)} | {fit:.1f} | {rss} "
            f"| {extra[0]} | {extra[1]} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=["banking77", "clinc150"], default="banking77")
    ap.add_argument("--methods", nargs="+", default=["prototype", "logistic", "label_prior"])
    ap.add_argument("--shots", nargs="+", type=int, default=[1, 5, 10])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--loss", default="supcon")
    ap.add_argument("--C", type=float, default=10.0)
    ap.add_argument("--prior-weight", type=float, default=1.0)
    ap.add_argument("--label-examples", action="store_true", help="add label texts as training examples")
    ap.add_argument(
        "--unlabeled", action="store_true", help="self-training on the rest of the training split, labels dropped"
    )
    ap.add_argument("--pseudo-per-class", type=int, default=80)
    ap.add_argument("--rounds", type=int, default=4, help="self-training rounds")
    ap.add_argument("--knn", type=int, default=0, help="neighbour vote of the K nearest training rows")
    ap.add_argument("--knn-weight", type=float, default=0.5)
    ap.add_argument("--tag", default="", help="label for a variant in the log")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--cache", type=Path, default=Path("runs/text_cache/minilm.safetensors"))
    ap.add_argument("--log", type=Path, default=None, help="JSONL log (default runs/text_bench/DATASET.jsonl)")
    ap.add_argument("--summary", action="store_true", help="print the table of the log and exit")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is much faster than 2 on a CPU shared with other jobs)"
    )
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    log = args.log or Path(f"runs/text_bench/{args.dataset}.jsonl")
    if args.summary:
        summary(log)
        return
    if args.cache.is_file():
        load_cache(args.cache)
    encoder = SentenceEncoder("all-MiniLM-L6-v2")
    precompute(args.dataset, args.data_root, encoder, args.seeds, args.cache, pool=args.unlabeled)
    train, test, oos = data_for(args.dataset, args.data_root)
    held = held_out(args.dataset, args.data_root) if oos is not None else None
    log.parent.mkdir(parents=True, exist_ok=True)
    for method in args.methods:
        for k in args.shots:
            for seed in args.seeds:
                row = run_one(args, train, test, oos, held, method, k, seed)
                print(json.dumps(row), flush=True)
                with open(log, "a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
