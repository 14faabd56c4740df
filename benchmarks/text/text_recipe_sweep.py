"""The auto recipe's knobs at fixed step counts, many fits at once: how the text defaults were checked.

text_auto_variants.py runs the default as a user gets it (a time budget, so the step count follows the
machine); this script fixes the number of contrastive steps per set (``--steps clinc150=300``), so that
variants are compared at equal work on any machine, and runs the fits in a pool of processes (one torch
thread each), on a GPU with ``--device cuda``. Draws and evaluation texts are text_vs_setfit.py's
(``--eval val``: training-split texts outside the draw; ``test``: the test split, ``--n-eval`` texts).

A variant is ``NAME=JSON``: UPPER-CASE keys set constants of kshot/text/auto.py (``LR``, ``BLEND``, ...),
lower-case keys are FewShotClassifier parameters (``temperature``, or ``method``/``steps`` for an explicit
method), and ``step_scale`` multiplies the ``--steps`` of every set. The variant ``default`` (no change)
is always run; ``--summary`` prints every variant's mean and its per-seed difference from it.

    HF_HUB_OFFLINE=1 KSHOT_DATA=/path/to/data python benchmarks/text/text_recipe_sweep.py --device cuda \\
        --workers 14 --sets clinc150 banking77 mr subj --steps clinc150=300 banking77=150 --seeds 0 1 2 3 \\
        --variant 'lr5e-5={"LR": 5e-5}' --variant 'T0.1={"temperature": 0.1}' --log runs/sweep.jsonl
    python benchmarks/text/text_recipe_sweep.py --summary --log runs/sweep.jsonl
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE.parent), str(HERE)]  # the repository, benchmarks/, benchmarks/text/

SHOTS = {
    "mr": 8,
    "subj": 8,
    "clinc150-domains": 8,
    "banking77": 10,
    "clinc150": 10,
    "bbc-news": 8,
    "spam-assassin": 8,
    "fortunes": 8,
    "conventions": 8,
}
HELD_OUT = ("fortunes", "conventions")  # text_vs_setfit.py's held-out sets: --eval test only


def fail(message: str):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_variant(item: str) -> tuple[str, dict]:
    from kshot.text import auto
    from kshot.text.classifier import FewShotClassifier

    name, _, value = item.partition("=")
    try:
        spec = json.loads(value)
    except json.JSONDecodeError:
        spec = None
    if not name or not isinstance(spec, dict):
        fail(f"--variant needs NAME=JSON object, e.g. 'lr5e-5={{\"LR\": 5e-5}}', got {item!r}")
    if name == "default":
        fail("--variant: 'default' is the unchanged recipe, always run; give the variant another name")
    for key in spec:
        if not (
            (key.isupper() and hasattr(auto, key)) or key in FewShotClassifier._get_param_names() or key == "step_scale"
        ):
            fail(
                f"--variant {name}: {key!r} is neither a constant of kshot.text.auto (upper case), a "
                "FewShotClassifier parameter nor step_scale"
            )
    return name, spec


_INIT_ERROR: list[str] = []  # a worker whose start failed reports it for every fit instead of restarting


def _init(model: str, device: str) -> None:
    import torch

    torch.set_num_threads(1)
    try:
        from kshot.text import SentenceEncoder

        SentenceEncoder(model, device=device).model.float()  # a float16 copy of the weights is fine to carry
    except Exception as exc:  # noqa: BLE001 - an initializer that raises is restarted by the pool forever
        _INIT_ERROR.append(f"worker start failed: {type(exc).__name__}: {exc}")


def _fit(job: tuple) -> dict:
    variant, spec, name, seed, steps, a = job
    if _INIT_ERROR:
        return {"variant": variant, "set": name, "seed": seed, "error": _INIT_ERROR[0]}
    from text_vs_setfit import accuracy, draw_texts, eval_set

    from kshot.text import FewShotClassifier, auto

    consts = {k: v for k, v in spec.items() if k.isupper()}
    params = {k: v for k, v in spec.items() if k.islower() and k != "step_scale"}
    saved = {k: getattr(auto, k) for k in [*consts, "STEP_RANGE"]}
    try:
        for k, v in consts.items():
            setattr(auto, k, v)
        if steps:
            n = int(round(steps * spec.get("step_scale", 1)))
            auto.STEP_RANGE = (n, n)
        k = SHOTS.get(name, 8) if a.shots is None else a.shots
        train, draw, texts, labels = draw_texts(name, k, seed, k, a.data_root)
        eval_texts, eval_labels = eval_set(name, a.eval, train, draw, a.n_eval, a.data_root)
        clf = FewShotClassifier(encoder=a.model, device=a.device, time_budget=1e9, seed=seed, **params)
        start = time.perf_counter()
        clf.fit(texts, labels)
        fit_s = time.perf_counter() - start
        acc = accuracy(clf.predict(eval_texts), eval_labels)
        return {
            "variant": variant,
            "spec": spec,
            "set": name,
            "k": k,
            "seed": seed,
            "eval": a.eval,
            "steps": steps,
            "model": a.model,
            "n_eval": len(eval_texts),
            "accuracy": acc,
            "fit_seconds": round(fit_s, 1),
            "device": a.device,
            "recipe": getattr(clf, "recipe_", clf.method),
        }
    except Exception:  # noqa: BLE001 - one failed fit is reported, the sweep goes on
        return {"variant": variant, "set": name, "seed": seed, "error": traceback.format_exc()[-1500:]}
    finally:
        for k, v in saved.items():
            setattr(auto, k, v)


def summary(log: Path) -> None:
    rows = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    acc: dict[tuple, dict[int, float]] = {}
    for r in rows:  # runs with other step counts, shots or encoders are kept apart
        if "accuracy" in r:
            key = (r["eval"], r["set"], r.get("k"), r.get("steps"), r.get("model"), r["variant"])
            acc.setdefault(key, {})[r["seed"]] = 100 * r["accuracy"]
    print("| eval | set | K | steps | variant | seeds | accuracy % (mean) | minus default, per seed |")
    print("|---|---|---:|---:|---|---|---:|---|")
    for (ev, s, k, steps, model, v), by_seed in sorted(
        acc.items(), key=lambda kv: (*map(str, kv[0][:5]), kv[0][5] != "default")
    ):
        base = acc.get((ev, s, k, steps, model, "default"), {})
        seeds = sorted(by_seed)
        diff = ", ".join(f"{by_seed[i] - base[i]:+.1f}" for i in seeds if i in base) if v != "default" else ""
        mean = np.mean(list(by_seed.values()))
        print(f"| {ev} | {s} | {k} | {steps or 'plan'} | {v} | {','.join(map(str, seeds))} | {mean:.2f} | {diff} |")
    errors = [r for r in rows if "error" in r]
    if errors:
        print(f"\n{len(errors)} fits failed; the first: {errors[0]['error'].splitlines()[-1]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=["clinc150", "banking77", "mr", "subj"], choices=list(SHOTS))
    ap.add_argument("--shots", type=int, default=None, help="examples per class (default: 10 intents, 8 others)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3])
    ap.add_argument("--steps", nargs="*", default=[], metavar="SET=N", help="fixed contrastive steps of a set")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=JSON")
    ap.add_argument(
        "--no-default",
        action="store_true",
        help="skip the default (its fits of these sets and seeds are already in --log)",
    )
    ap.add_argument("--eval", choices=["val", "test"], default="val")
    ap.add_argument("--n-eval", type=int, default=1000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="all-MiniLM-L6-v2", help="encoder name or directory")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--log", type=Path, default=Path("runs/text_recipe_sweep.jsonl"))
    ap.add_argument("--summary", action="store_true")
    a = ap.parse_args()
    if a.summary:
        if not a.log.is_file():
            fail(f"no log at {a.log}")
        return summary(a.log)
    steps = {}
    for item in a.steps:
        name, _, n = item.partition("=")
        if name not in SHOTS or not n.isdigit() or int(n) < 1:
            fail(f"--steps needs SET=N with SET one of {', '.join(SHOTS)} and N >= 1, got {item!r}")
        steps[name] = int(n)
    held = sorted(set(a.sets) & set(HELD_OUT))
    if held and a.eval != "test":
        fail(f"{', '.join(held)} held out: no recipe is chosen on them, so they run with --eval test only")
    if a.workers < 1:
        fail(f"--workers must be at least 1, got {a.workers}")
    variants = dict(([] if a.no_default else [("default", {})]) + [parse_variant(v) for v in a.variant])
    if not variants:
        fail("--no-default needs at least one --variant")
    if any("step_scale" in spec for spec in variants.values()) and set(a.sets) - set(steps):
        fail(f"step_scale multiplies --steps: give --steps for {', '.join(sorted(set(a.sets) - set(steps)))} too")
    from kshot.core.errors import KshotError
    from kshot.text.encoder import check_device

    try:
        check_device(a.device, "--device")
    except KshotError as exc:
        fail(str(exc))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    jobs = [(v, spec, s, seed, steps.get(s), a) for v, spec in variants.items() for s in a.sets for seed in a.seeds]
    a.log.parent.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("spawn")
    failed = 0
    with ctx.Pool(a.workers, initializer=_init, initargs=(a.model, a.device)) as pool, a.log.open("a") as log:
        for i, r in enumerate(pool.imap_unordered(_fit, jobs), 1):
            failed += "error" in r
            log.write(json.dumps(r) + "\n")
            log.flush()
            print(
                f"[{i}/{len(jobs)}] {r['variant']} {r['set']} seed {r['seed']}: "
                + (
                    f"{100 * r['accuracy']:.2f} % in {r['fit_seconds']} s"
                    if "accuracy" in r
                    else "FAILED " + r["error"].splitlines()[-1]
                ),
                flush=True,
            )
    if failed:
        fail(f"{failed} of {len(jobs)} fits failed (their tracebacks are in {a.log})")


if __name__ == "__main__":
    main()
