"""WNUT-17 few-shot NER: every tagging method at 1 and 5 shots, greedy support sets seeds 0-4 drawn from
the training file, scored (entity micro F1, seqeval) on the full test file (emerging.test.annotated).

    export OMP_NUM_THREADS=1 KSHOT_DATA=/path/to/data
    for m in span proto nnshot structshot episodic-lstm episodic-gru episodic-transformer finetune finetune-crf; do
        python benchmarks/tagging/wnut17.py --method $m --out runs.jsonl
    done
    python benchmarks/tagging/mpnet.py          # assembles $KSHOT_DATA/models/all-mpnet-base-v2 (see there)
    python benchmarks/tagging/wnut17.py --method span --encoder $KSHOT_DATA/models/all-mpnet-base-v2 --out runs.jsonl
    python benchmarks/tagging/wnut17.py --method span --unlabeled --out runs.jsonl   # + self-training on the
                                          # training file's other sentences, their tags never read
    python benchmarks/tagging/wnut17.py --report runs.jsonl      # the markdown table
    python benchmarks/tagging/wnut17.py --report runs.jsonl --docs docs/tagging.md   # + the headline rows
    python benchmarks/tagging/wnut17.py --method span --shots 5 --seeds 0 1 --every 3 --out dev.jsonl
                                          # development: two support sets, every third test sentence
    python benchmarks/tagging/wnut17.py --method finetune-crf --shots 5 --seeds 0 1 2 --split dev \\
        --set lr=1e-4 --out dev.jsonl                             # choosing a setting on the dev file

Each ``--method`` run is one process: it fits the 10 support sets one after the other and appends one JSON
row per fit (F1, precision, recall, F1 per type, the F1 of the spans with their types ignored, i.e. how many
entities were found at all, fit and tagging seconds, wall and CPU, the torch threads and the load average)
plus the process's peak RSS. A frozen encoder's
test-set vectors are computed once per process and reused (the first tagging time includes them); the
fine-tuned encoders re-encode the test set every time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONFIGS = {
    "proto": dict(method="proto"),
    "nnshot": dict(method="nnshot"),
    "structshot": dict(method="structshot"),
    "episodic-lstm": dict(method="episodic", backbone="lstm"),
    "episodic-gru": dict(method="episodic", backbone="gru"),
    "episodic-transformer": dict(method="episodic", backbone="transformer"),
    "finetune": dict(method="finetune"),
    "finetune-crf": dict(method="finetune", crf=True),
    "span": dict(method="span"),
}


def run(
    name: str,
    out: Path,
    shots=(1, 5),
    seeds=range(5),
    overrides: dict | None = None,
    split: str = "test",
    encoder: str | None = None,
    every: int = 1,
    threads: int = 1,
    unlabeled: bool = False,
) -> None:
    """Fit and score ``name`` (a CONFIGS key) on every support set, scored on ``split`` (``test``, or
    ``dev`` to choose settings); ``overrides`` (e.g. ``{"lr": 1e-4}``) change FewShotTagger's parameters
    and name the rows ``finetune-crf (lr 0.0001)``; dev rows are named ``... [dev]``."""
    from kshot.data import load_dataset
    from kshot.tagging.sampling import greedy_support
    from kshot.tagging.tagger import FewShotTagger

    torch.set_num_threads(threads)
    train, test = load_dataset("wnut17", "train"), load_dataset("wnut17", split)
    if every > 1:  # development: a fixed subsample, every n-th sentence
        test = test.subset(list(range(0, len(test), every)))
    overrides = overrides or {}
    params = {**CONFIGS[name], **overrides, **({"encoder": encoder} if encoder else {})}
    if encoder:
        name += f" ({Path(encoder).name})"
    if overrides:
        name += (
            " (" + ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in overrides.items()) + ")"
        )
    if unlabeled:
        name += " + unlabeled"
    if split != "test" or every > 1:
        name += f" [{split}{f'/{every}' if every > 1 else ''}]"
    done = {(r["config"], r["shots"], r["seed"]) for r in _rows(out)}
    for k in shots:
        for seed in seeds:
            if (name, k, seed) in done:
                continue
            idx = greedy_support(train.tags, k, seed)
            c0, t0 = time.process_time(), time.perf_counter()
            chosen = set(idx)
            rest = [s for i, s in enumerate(train.sentences) if i not in chosen] if unlabeled else None
            tagger = FewShotTagger(**params, seed=seed).fit(
                [train.sentences[i] for i in idx], [train.tags[i] for i in idx], unlabeled=rest
            )
            c1, t1 = time.process_time(), time.perf_counter()
            pred = tagger.predict(test.sentences)
            c2, t2 = time.process_time(), time.perf_counter()
            from kshot.tagging.metrics import entity_scores

            scores = entity_scores(test.tags, pred)
            spans = entity_scores(untyped(test.tags), untyped(pred))["micro"]
            row = {
                "config": name,
                "shots": k,
                "seed": seed,
                "support_sentences": len(idx),
                **({"pseudo_sentences": tagger.method_.pseudo_count} if unlabeled else {}),
                **scores["micro"],
                "f1_spans": spans["f1"],
                "f1_types": {t: v["f1"] for t, v in scores["types"].items()},
                "fit_s": t1 - t0,
                "tag_s": t2 - t1,
                "fit_cpu_s": c1 - c0,
                "tag_cpu_s": c2 - c1,
                "threads": threads,
                "load_avg": os.getloadavg()[0],
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


def untyped(tags) -> list[list[str]]:
    """Every entity tag renamed to one type: scores whether the spans were found, whatever their type."""
    return [[t if t == "O" else t[:2] + "ENTITY" for t in s] for s in tags]


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def spans_f1(rows: list[dict]) -> str:
    values = [100 * r["f1_spans"] for r in rows if "f1_spans" in r]
    return f"{statistics.mean(values):.1f}" if len(values) == len(rows) else "-"  # rows from before the column


def report(path: Path) -> str:
    rows = _rows(path)
    lines = [
        "| method | shots | support sets | micro F1 (mean ± std) | precision | recall | spans F1, type ignored "
        "| fit s (median, max) | tag the file s (median, max) | peak RSS MiB |",
        "|---|---:|---:|---|---:|---:|---:|---|---|---:|",
    ]
    names = list(
        dict.fromkeys([*(n for n in CONFIGS if any(r["config"] == n for r in rows)), *(r["config"] for r in rows)])
    )
    for name in names:
        for k in (1, 5):
            rs = [r for r in rows if r["config"] == name and r["shots"] == k]
            if not rs:
                continue
            f1 = [100 * r["f1"] for r in rs]
            std = statistics.stdev(f1) if len(f1) > 1 else float("nan")
            med = lambda key: f"{statistics.median(r[key] for r in rs):.1f}, {max(r[key] for r in rs):.1f}"  # noqa: E731
            lines.append(
                f"| {name} | {k} | {len(rs)} | {statistics.mean(f1):.1f} ± {std:.1f} | "
                f"{100 * statistics.mean(r['precision'] for r in rs):.1f} | "
                f"{100 * statistics.mean(r['recall'] for r in rs):.1f} | {spans_f1(rs)} | {med('fit_s')} | "
                f"{med('tag_s')} | "
                f"{max(r['peak_rss_mib'] for r in rs):.0f} |"
            )
    return "\n".join(lines)


TYPES = ("person", "location", "group", "corporation", "product", "creative-work")
#: published WNUT-17 figures beside each shot count (greedy K-shot support sets, BERT-size encoders)
PUBLISHED = {5: "29.5-30.5 (BERT-base baselines); 37.6 (best BERT-size)", 1: "-"}
DOCS_SECTION = "WNUT-17, K-shot (headline)"
DOCS_HEADER = [
    "method (encoder)",
    "shots",
    "support sets",
    "micro F1, mean ± std (per set)",
    "spans F1, types ignored",
    *TYPES,
    "fit s (median)",
    "tag 1,287 sentences s (median)",
    "published",
    "command",
]


def command(name: str, k: int) -> str:
    unlabeled = name.endswith(" + unlabeled")
    name = name.removesuffix(" + unlabeled")
    base = name.split(" (")[0]
    enc = name[len(base) :].strip(" ()")
    return (
        "`python benchmarks/tagging/wnut17.py --method "
        + base
        + f" --shots {k}"
        + (f" --encoder $KSHOT_DATA/models/{enc}" if enc else "")
        + (" --unlabeled" if unlabeled else "")
        + " --out runs.jsonl`"
    )


def write_docs(path: Path, docs: Path) -> int:
    """Upsert one row per (config, shots) of ``path`` (test-file rows only) into ``docs``'s headline table."""
    from common import upsert_row

    rows = [r for r in _rows(path) if "[" not in r["config"]]
    n = 0
    for name in dict.fromkeys(r["config"] for r in rows):
        for k in (5, 1):
            rs = sorted((r for r in rows if r["config"] == name and r["shots"] == k), key=lambda r: r["seed"])
            if not rs:
                continue
            f1 = [100 * r["f1"] for r in rs]
            std = f" ± {statistics.stdev(f1):.1f}" if len(f1) > 1 else ""
            types = [f"{100 * statistics.mean(r['f1_types'].get(t, 0.0) for r in rs):.1f}" for t in TYPES]
            upsert_row(
                DOCS_SECTION,
                DOCS_HEADER,
                f"{name}, {k}-shot",
                [
                    str(k),
                    str(len(rs)),
                    f"**{statistics.mean(f1):.1f}**{std} ({', '.join(f'{x:.1f}' for x in f1)})",
                    spans_f1(rs),
                    *types,
                    f"{statistics.median(r['fit_s'] for r in rs):.0f}",
                    f"{statistics.median(r['tag_s'] for r in rs):.0f}",
                    PUBLISHED[k],
                    command(name, k),
                ],
                docs,
            )
            n += 1
    return n


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", choices=list(CONFIGS))
    ap.add_argument("--out", type=Path, default=Path("tagging_wnut17_runs.jsonl"))
    ap.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    ap.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="support sets (greedy sampling seeds)"
    )
    ap.add_argument("--report", type=Path)
    ap.add_argument(
        "--docs", type=Path, help="with --report: also write its rows into this page's headline table (docs/tagging.md)"
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="a FewShotTagger parameter instead of the method's default, e.g. lr=1e-4, steps=120, "
        "layers=1, shape_weight=1.0 (repeatable)",
    )
    ap.add_argument(
        "--split",
        choices=["test", "dev"],
        default="test",
        help="the file to score on: test, or dev (emerging.dev.conll) to choose settings",
    )
    ap.add_argument(
        "--encoder",
        help="a local sentence-transformers directory instead of the packaged MiniLM "
        "(e.g. the one benchmarks/tagging/mpnet.py assembles); rows are named after it",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1 for the accuracy runs on the shared machine; 2 for the timed runs on 2 cores)",
    )
    ap.add_argument(
        "--every",
        type=int,
        default=1,
        help="score on every n-th sentence of the split only (development; rows are marked [test/n])",
    )
    ap.add_argument(
        "--unlabeled",
        action="store_true",
        help="self-training: give the tagger the training file's other sentences without their tags "
        "(it tags a sample of -p pool of them); rows are named '... + unlabeled'",
    )
    args = ap.parse_args()
    if args.report:
        print(report(args.report))
        if args.docs:
            print(f"{write_docs(args.report, args.docs)} rows written to {args.docs}")
    elif args.method:
        import inspect

        from common import parse_sets

        from kshot.tagging.tagger import FewShotTagger

        known = set(inspect.signature(FewShotTagger).parameters) - {"method", "seed"}
        overrides = parse_sets(
            args.set,
            known.__contains__,
            "--set {name}: not a FewShotTagger parameter (one of: " + ", ".join(sorted(known)).replace("{", "{{") + ")",
            "1e-4, 120, true",
        )
        run(
            args.method,
            args.out,
            tuple(args.shots),
            args.seeds,
            overrides=overrides,
            split=args.split,
            encoder=args.encoder,
            every=args.every,
            threads=args.threads,
            unlabeled=args.unlabeled,
        )
    else:
        ap.error("give --method or --report")
