"""int8 dynamic quantisation of the sentence encoder for `kshot serve`: speed, closeness to float32,
and what it does to a served classifier on a real task.

BANKING77, K=10 examples per class (seeds as in text/text_intents.py), logistic head, scored on the test
split (3,080 texts, or --test N of them). For each encoder variant it reports:

* ``ms_per_text``: CPU time per text of the encoder's forward pass, in this process, 1 torch thread,
  batches of 16 of the first 64 test texts (median of --repeats passes over them);
* cosine of its embeddings to the float32 ones (min / median over the test texts);
* ``acc_consistent``: accuracy when the head is fitted on this variant's embeddings of the examples
  (examples added to the service are encoded by the serving encoder);
* ``acc_fp32_head``: accuracy when the head is fitted on float32 embeddings of the examples and the
  queries go through this variant (the examples that came with a model directory fitted in float32);
* ``agree_fp32``: share of test texts whose predicted label equals float32's (consistent head).

    KSHOT_DATA=/work/shared/data PYTHONPATH=. HF_HUB_OFFLINE=1 python benchmarks/serve/serve_quantize.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "benchmarks" / "text")]  # text_intents

from text_intents import few_shot_indices  # noqa: E402

from kshot.data import load_dataset  # noqa: E402
from kshot.text import FewShotClassifier, SentenceEncoder  # noqa: E402
from kshot.text.encoder import quantize_dynamic  # noqa: E402

# name -> (per_channel, layers kept float32); "int8-per-channel" is what quantize="int8" uses
VARIANTS = {
    "fp32": None,
    "int8-per-tensor": (False, ()),
    "int8-per-channel": (True, ()),
    "int8-per-channel, FFN output fp32": (True, ("output.dense",)),
    "int8-per-channel, last layer fp32": (True, ("layer.5.",)),
}


def cpu_ms_per_text(enc: SentenceEncoder, texts: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):
        t = time.thread_time()
        for start in range(0, len(texts), 16):
            enc._encode_uncached(texts[start : start + 16])
        times.append((time.thread_time() - t) * 1000 / len(texts))
    return statistics.median(times[1:])  # the first pass warms up


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--shots", type=int, default=10)
    ap.add_argument("--test", type=int, default=0, help="score on this many test texts (seeded subsample; 0: all)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    train, test = load_dataset("banking77", "train"), load_dataset("banking77", "test")
    test_idx = np.arange(len(test))
    if args.test:
        test_idx = np.sort(np.random.default_rng(0).permutation(len(test))[: args.test])
    queries = [test.items[i] for i in test_idx]
    truth = test.labels[test_idx]
    supports = {s: few_shot_indices(train.labels, args.shots, s, kmax=args.shots) for s in args.seeds}
    base = SentenceEncoder()
    encoders = {
        name: base
        if v is None
        else SentenceEncoder(base.name, _st=quantize_dynamic(base.model, *v), _key=f"{base.key}#{name}")
        for name, v in VARIANTS.items()
        if name == "fp32" or name in args.variants
    }
    emb = {}  # (variant, "test" | seed) -> embeddings
    for name, enc in encoders.items():
        emb[name, "test"] = enc._encode_uncached(queries)
        for s, idx in supports.items():
            emb[name, s] = enc._encode_uncached([train.items[i] for i in idx])
    clf = FewShotClassifier(method="logistic").fit(["a", "b"], ["a", "b"])  # fitted shell; heads set below

    def predict(X_support, y_support, X_query):
        clf.fit_embeddings(X_support, [train.class_names[y] for y in y_support])
        proba = clf.proba_embeddings(X_query)
        return np.array([test.class_names.index(clf.classes_[j]) for j in proba.argmax(1)])

    reference = {s: predict(emb["fp32", s], train.labels[idx], emb["fp32", "test"]) for s, idx in supports.items()}
    rows = []
    for name, enc in encoders.items():
        cos = (emb[name, "test"] * emb["fp32", "test"]).sum(1)
        cons, mixed, agree = [], [], []
        for s, idx in supports.items():
            pred = predict(emb[name, s], train.labels[idx], emb[name, "test"])
            cons.append(float((pred == truth).mean()))
            agree.append(float((pred == reference[s]).mean()))
            mixed.append(float((predict(emb["fp32", s], train.labels[idx], emb[name, "test"]) == truth).mean()))
        ms = cpu_ms_per_text(enc, list(test.items[:64]), args.repeats)
        rows.append(
            {
                "variant": name,
                "ms_per_text": round(ms, 2),
                "cos_min": round(float(cos.min()), 4),
                "cos_median": round(float(np.median(cos)), 4),
                "acc_consistent": [round(a, 4) for a in cons],
                "acc_fp32_head": [round(a, 4) for a in mixed],
                "agree_fp32": [round(a, 4) for a in agree],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    summary = {
        "dataset": "banking77",
        "shots": args.shots,
        "seeds": args.seeds,
        "test_texts": len(queries),
        "torch": torch.__version__,
        "engine": torch.backends.quantized.engine,
        "rows": rows,
    }
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
