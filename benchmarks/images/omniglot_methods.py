"""Train one few-shot method on Omniglot (Vinyals split) and record its test accuracy in docs/images.md.

Trains with ``kshot.meta_train`` (episodic, or supervised pre-training for baseline / baseline++),
keeps the checkpoint with the best 5-way validation accuracy, then scores it on 1,000 fixed test
episodes (split ``test``, 15 queries per class, seed 0) for each ``--eval`` setting (WAYxSHOT), and
updates that method's row of the table "Omniglot: every method" (cells not evaluated are kept).

    python benchmarks/images/omniglot_methods.py --method siamese --way 20 --shot 1 --episodes 1500
    python benchmarks/images/omniglot_methods.py --method baseline++ --episodes 3000 --eval 5x1,20x1,5x5,20x5
    python benchmarks/images/omniglot_methods.py --method baseline++ --out runs/bpp --eval-only -p test_time=finetune
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/common.py
from common import doc_page, machine  # noqa: E402

import kshot  # noqa: E402
from kshot.cli.common import parse_params  # noqa: E402
from kshot.core.io import atomic_write  # noqa: E402

SECTION = "## Omniglot: every method"
SETTINGS = ("5x1", "5x5", "20x1", "20x5")
HEADER = [
    "method",
    "5-way 1-shot",
    "5-way 5-shot",
    "20-way 1-shot",
    "20-way 5-shot",
    "paper",
    "training",
    "training time",
    "command",
]
PAPER = {
    "protonet": "98.8 / 99.7 / 96.0 / 98.9",
    "siamese": "97.3 / 98.4 / 88.2 / 97.0",
    "matchingnet": "98.1 / 98.9 / 93.8 / 98.5",
    "relationnet": "99.6 / 99.8 / 97.6 / 99.1",
    "baseline": "-",
    "baseline++": "-",
}
INTRO = """\
Test accuracy (%) ± 95% CI over the same 1,000 fixed test episodes (Vinyals split `test`, 15 queries
per class, seed 0). Each row is one trained model, evaluated at every setting shown (a model
trained with 1-shot episodes is also scored at 5 shots). Trained on a 2-core CPU (torch 2.13.0+cpu)
shared with other jobs, so the training times are upper bounds. Rows written by
`benchmarks/images/omniglot_methods.py`; paper figures in the order 5w1s / 5w5s / 20w1s / 20w5s.
"""


def parse_settings(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        if part not in SETTINGS:
            raise SystemExit(f"--eval takes WAYxSHOT from {', '.join(SETTINGS)}, got {part!r}")
        way, shot = map(int, part.split("x"))
        out.append((way, shot))
    return out


def upsert_cells(key: str, cells: dict[str, str], path: Path) -> None:
    """Set ``cells`` (header name -> text) in the row whose first cell is ``key`` of the table under
    SECTION in the docs page ``path`` (it must exist); keep the other cells."""
    if not path.is_file():
        raise SystemExit(f"docs page {path} does not exist")
    text = path.read_text()
    if SECTION not in text:
        text = (
            text.rstrip("\n")
            + f"\n\n{SECTION}\n\n{INTRO}\n| "
            + " | ".join(HEADER)
            + " |\n|"
            + "---|" * len(HEADER)
            + "\n"
        )
    start = text.index(SECTION)
    nxt = text.find("\n## ", start + len(SECTION))
    end = len(text) if nxt < 0 else nxt + 1
    block = text[start:end]
    pattern = re.compile(r"^\| " + re.escape(key) + r" \|(.*)\|\n", re.M)
    found = pattern.search(block)
    old = [c.strip() for c in found.group(1).split("|")] if found else ["-"] * (len(HEADER) - 1)
    row = [cells.get(name, old[i]) for i, name in enumerate(HEADER[1:])]
    line = "| " + " | ".join([key, *row]) + " |\n"
    if found:
        block = block[: found.start()] + line + block[found.end() :]
    else:  # after the last table row of the section
        rows = list(re.finditer(r"^\|.*\|\n", block, re.M))
        at = rows[-1].end() if rows else len(block)
        block = block[:at] + line + block[at:]
    with atomic_write(path, "w") as f:
        f.write(text[:start] + block + text[end:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--method", required=True, choices=sorted(kshot.METHODS))
    p.add_argument("--way", type=int, default=20, help="classes per training episode")
    p.add_argument("--shot", type=int, default=1)
    p.add_argument("--query", type=int, default=5)
    p.add_argument("--episodes", type=int, default=2000, help="training episodes (mini-batches for baselines)")
    p.add_argument("--batch-size", type=int, default=64, help="pre-training mini-batch (baseline, baseline++)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-step", type=int, default=None, help="default: episodes // 2")
    p.add_argument("--val-every", type=int, default=None, help="default: episodes // 2")
    p.add_argument("--val-episodes", type=int, default=100, help="fixed 5-way 1-shot validation episodes")
    p.add_argument("--augment", action="append", default=None, help="KEY=VALUE (kshot.images.augment)")
    p.add_argument("-p", "--param", action="append", default=None, help="method parameter KEY=VALUE")
    p.add_argument("--eval", default="5x1,20x1", help=f"comma-separated settings from {', '.join(SETTINGS)}")
    p.add_argument("--test-episodes", type=int, default=1000)
    p.add_argument("--eval-batch", type=int, default=10, help="test episodes per forward pass (same scores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--eval-only", action="store_true", help="evaluate the run in --out; do not train")
    p.add_argument("--row", default=None, help="row name (default: method and test-time parameters)")
    p.add_argument("--no-record", action="store_true", help="do not write docs/images.md")
    a = p.parse_args()
    params = parse_params(a.param)
    out = Path(a.out or f"runs/{a.method}-{a.way}w{a.shot}s")
    settings = parse_settings(a.eval)

    if not a.eval_only:
        cfg = kshot.TrainConfig(
            method=a.method,
            dataset="omniglot",
            way=a.way,
            shot=a.shot,
            query=a.query,
            episodes=a.episodes,
            batch_size=a.batch_size,
            lr=a.lr,
            lr_step=a.lr_step or max(a.episodes // 2, 1),
            val_way=5,
            val_shot=1,
            val_query=15,
            val_every=a.val_every or max(a.episodes // 2, 1),
            val_episodes=a.val_episodes,
            seed=a.seed,
            data_root=a.data_root,
            method_params=params,
            augment=parse_params(a.augment),
        )
        wall = time.perf_counter()
        summary = kshot.meta_train(cfg, out)
        print(
            f"trained {summary['episodes']} episodes in {summary['train_seconds']:.0f} s of steps "
            f"({time.perf_counter() - wall:.0f} s wall with validation); best val "
            f"{100 * summary['best_val_accuracy']:.2f}%",
            flush=True,
        )

    method, meta = kshot.load_method(out, params=params)  # e.g. test_time=finetune on a trained run
    cfg = meta["config"]
    test = kshot.load_dataset("omniglot", "test", root=a.data_root)
    cells = {}
    for way, shot in settings:
        t = time.perf_counter()
        score = kshot.evaluate(
            method,
            test,
            way=way,
            shot=shot,
            query=15,
            episodes=a.test_episodes,
            seed=0,
            batch=a.eval_batch,
            progress=True,
        )
        print(f"{way}-way {shot}-shot: {score}  ({time.perf_counter() - t:.0f} s)", flush=True)
        cells[f"{way}-way {shot}-shot"] = f"{100 * score.accuracy:.2f} ± {100 * score.ci95:.2f}"
    if a.no_record:
        return
    unit = (
        "mini-batches of " + str(cfg["batch_size"])
        if kshot.METHODS[a.method].pretrains
        else f"{cfg['way']}-way {cfg['shot']}-shot {cfg['query']}-query episodes"
    )
    history = json.loads((out / "last.json").read_text())
    cmd = " ".join(["python", "benchmarks/images/omniglot_methods.py", *sys.argv[1:]])
    cells.update(
        {
            "paper": PAPER[a.method],
            "training": f"{meta['episodes_done']} of {history['episodes_done']} {unit} (best val)",
            "training time": f"{history['train_seconds'] / 60:.1f} min",
            "command": f"`{cmd}`",
        }
    )
    extra = {k: v for k, v in meta["method_params"].items() if k in params}
    key = a.row or (a.method + (" " + " ".join(f"{k}={v}" for k, v in extra.items()) if extra else ""))
    upsert_cells(key, cells, doc_page("images"))
    print(f"recorded row {key!r} in {doc_page('images')} ({machine()})")


if __name__ == "__main__":
    main()
