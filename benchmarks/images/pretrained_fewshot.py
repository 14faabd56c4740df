"""The pretrained path on fixed few-shot episodes of classes no fitting saw, against the from-scratch ProtoNet
and the hand-written recipe, all on the same episodes (docs/images.md).

Per shot: ``--episodes`` episodes (5-way, 15 queries, seed 0) of the data set's ``--split``, restricted to
``--per-class`` images of each class (drawn once with seed 0; the features of every image are computed
once and reused by every episode and method). Methods: the classifier's ``prototype`` and ``logistic``
heads on frozen EfficientNet-Lite0 features, ``sklearn`` (the same features, scikit-learn's
``LogisticRegression()`` defaults: the recipe people write by hand), ``finetune`` and ``auto`` (what the
classifier's default chooses; it may fine-tune) on the first ``--finetune-episodes`` of the same episodes, with
the frozen methods re-scored on that subset for a paired comparison, and each ``--run`` (a ``kshot image train`` run directory,
e.g. a Conv4 ProtoNet trained from scratch on the other classes) scored by ``kshot.images.evaluate`` on the
same episodes. Differences are paired per episode: mean ± 1.96 sd / sqrt(n).

    python benchmarks/images/pretrained_fewshot.py --dataset fashion-mnist --image-size 112 --invert \\
        --run 1=runs/fm-protonet-1 --run 5=runs/fm-protonet-5 --log runs/fm.jsonl

Writes one JSON line per (shot, method, episode subset) to ``--log`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from kshot.core.stats import ci95
from kshot.data import LabeledData, load_dataset
from kshot.images.evaluation import evaluate
from kshot.images.features import ImageEncoder
from kshot.images.pretrained import evaluate_pretrained
from kshot.images.training import load_method


def subset(data: LabeledData, per_class: int, seed: int = 0) -> LabeledData:
    rng = np.random.default_rng(seed)
    keep = np.sort(
        np.concatenate(
            [
                rng.choice(np.flatnonzero(data.labels == c), min(per_class, (data.labels == c).sum()), replace=False)
                for c in range(data.num_classes)
            ]
        )
    )
    return LabeledData(
        data.items[torch.from_numpy(keep)],
        data.labels[keep],
        data.class_names,
        name=data.name,
        split=data.split,
        meta={**data.meta, "per_class": per_class},
    )


def paired(a: np.ndarray, b: np.ndarray) -> str:
    d = np.asarray(a) - np.asarray(b)
    return f"{100 * d.mean():+.2f} ± {100 * ci95(d):.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--split", default="test")
    p.add_argument("--dataset-param", action="append", default=[], help="KEY=VALUE for the loader (JSON values)")
    p.add_argument("--per-class", type=int, default=300)
    p.add_argument("--shots", default="1,5")
    p.add_argument("--way", type=int, default=5)
    p.add_argument("--query", type=int, default=15)
    p.add_argument("--episodes", type=int, default=300)
    p.add_argument("--finetune-episodes", type=int, default=40)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--tune-blocks", type=int, default=2)
    p.add_argument("--image-size", type=int, default=112)
    p.add_argument("--invert", action="store_true")
    p.add_argument("--run", action="append", default=[], help="SHOT=RUN_DIR of a trained episodic run")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--runs-only",
        action="store_true",
        help="score only the --run directories and compare them, "
        "episode by episode, with the pretrained rows of the same shot already in --log",
    )
    p.add_argument("--log", required=True)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    params = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.dataset_param)}
    data = subset(load_dataset(args.dataset, args.split, **params), args.per_class, args.seed)
    runs = {int(k): v for k, v in (r.split("=", 1) for r in args.run)}
    encoder = ImageEncoder("efficientnet-lite0", image_size=args.image_size)
    features: dict = {}
    common = dict(
        way=args.way,
        query=args.query,
        seed=args.seed,
        invert=args.invert,
        steps=args.steps,
        tune_blocks=args.tune_blocks,
        encoder=encoder,
        features=features,
    )
    rows = []
    with open(args.log, "a") as log:

        def record(shot, method, score, subset_name, seconds, extra=None):
            row = {
                "dataset": args.dataset,
                "split": args.split,
                "per_class": args.per_class,
                "shot": shot,
                "method": method,
                "episodes": score.n,
                "subset": subset_name,
                "accuracy": score.accuracy,
                "ci95": score.ci95,
                "image_size": args.image_size,
                "invert": args.invert,
                "seconds": round(seconds, 1),
                "values": score.values.tolist(),
                **(extra or {}),
            }
            log.write(json.dumps(row) + "\n")
            log.flush()
            rows.append(row)
            print(f"{args.dataset} {shot}-shot {method:10s} [{subset_name}] {score}  ({seconds:.0f} s)", flush=True)

        for shot in [int(s) for s in args.shots.split(",")]:
            if args.runs_only:
                earlier = {}
                for line in open(args.log):
                    r = json.loads(line)
                    if (r["dataset"], r["split"], r["per_class"], r["shot"], r["subset"]) == (
                        args.dataset,
                        args.split,
                        args.per_class,
                        shot,
                        "all",
                    ) and r["episodes"] == args.episodes:
                        earlier[r["method"]] = np.array(r["values"])
                method, meta = load_method(runs[shot])
                t = time.perf_counter()
                s = evaluate(method, data, args.way, shot, args.query, args.episodes, seed=args.seed)
                record(shot, f"run:{meta['method']}", s, "all", time.perf_counter() - t, {"run": runs[shot]})
                for m in ("logistic", "prototype", "sklearn"):
                    if m in earlier:
                        print(f"  pretrained {m} - {meta['method']}: {paired(earlier[m], s.values)}")
                continue
            t = time.perf_counter()
            scores, _ = evaluate_pretrained(
                data, methods=("prototype", "logistic", "sklearn"), shot=shot, episodes=args.episodes, **common
            )
            seconds = time.perf_counter() - t
            for m, s in scores.items():
                record(shot, m, s, "all", seconds)
            if shot in runs:
                method, meta = load_method(runs[shot])
                t = time.perf_counter()
                s = evaluate(method, data, args.way, shot, args.query, args.episodes, seed=args.seed)
                record(shot, f"run:{meta['method']}", s, "all", time.perf_counter() - t, {"run": runs[shot]})
                print(
                    f"  pretrained logistic - {meta['method']}: {paired(scores['logistic'].values, s.values)}; "
                    f"prototype - {meta['method']}: {paired(scores['prototype'].values, s.values)}"
                )
            print(f"  logistic - sklearn: {paired(scores['logistic'].values, scores['sklearn'].values)}")
            if args.finetune_episodes:
                t = time.perf_counter()
                sub, chosen = evaluate_pretrained(
                    data,
                    methods=("prototype", "logistic", "sklearn", "finetune", "auto"),
                    shot=shot,
                    episodes=args.finetune_episodes,
                    **common,
                )
                seconds = time.perf_counter() - t
                for m, s in sub.items():
                    record(
                        shot,
                        m,
                        s,
                        f"first {args.finetune_episodes}",
                        seconds,
                        {"auto_chose": chosen} if m == "auto" else None,
                    )
                print(
                    f"  finetune - logistic: {paired(sub['finetune'].values, sub['logistic'].values)}; "
                    f"finetune - prototype: {paired(sub['finetune'].values, sub['prototype'].values)}"
                )
    print("\n| shot | method | episodes | accuracy % |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['shot']} | {r['method']} | {r['episodes']} ({r['subset']}) | {100 * r['accuracy']:.2f} ± "
            f"{100 * r['ci95']:.2f} |"
        )


if __name__ == "__main__":
    main()
