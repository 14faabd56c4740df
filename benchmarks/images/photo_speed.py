"""Speed of the photo path on this machine (docs/images.md), three targets in one run:

1. embedding throughput (photos/s, 640x480 JPEGs -> EfficientNet-Lite0 features at 224, decoding included,
   nothing cached) against a bare forward pass of the same network on ready tensors of the same batch size;
2. a frozen fit (``method="logistic"``) on 10 classes x 5 photos, decoding included, nothing cached;
3. one prediction (a photo not seen before) with the model loaded.

Each is repeated ``--repeats`` times (fresh photos each time, so nothing is cached); medians and ranges
are printed. Run it holding the timing lock on a shared machine:

    flock /tmp/kshot-timing.lock python benchmarks/images/photo_speed.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402


def make_photos(folder: Path, n: int, seed: int, classes: int = 10) -> tuple[list[Path], list[str]]:
    """``n`` 640x480 JPEGs: a crop of scikit-learn's sample photos with a drawn shape per class and noise."""
    from sklearn.datasets import load_sample_images

    base = load_sample_images().images
    rng = np.random.default_rng(seed)
    paths, labels = [], []
    for i in range(n):
        c = i % classes
        img = Image.fromarray(base[c % 2]).resize((640, 480))
        d = ImageDraw.Draw(img)
        x, y = (int(v) for v in rng.integers(100, 400, 2))
        d.regular_polygon((x, y, 60 + 5 * c), 3 + c, fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        noisy = np.clip(np.asarray(img, np.int16) + rng.integers(-8, 8, (480, 640, 3)), 0, 255).astype(np.uint8)
        path = folder / f"{seed}_{i}.jpg"
        Image.fromarray(noisy).save(path, quality=90)
        paths.append(path)
        labels.append(f"class{c}")
    return paths, labels


def summary(values: list[float], unit: str) -> str:
    return f"median {statistics.median(values):.3f} {unit} (range {min(values):.3f}-{max(values):.3f}, n={len(values)})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--photos", type=int, default=64, help="photos per throughput measurement")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from kshot.images import features
    from kshot.images.classifier import FewShotImageClassifier
    from kshot.images.features import ImageEncoder

    tmp = Path(tempfile.mkdtemp(prefix="kshot-photo-speed-"))
    encoder = ImageEncoder("efficientnet-lite0", batch_size=args.batch)
    x = torch.randn(args.batch, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        encoder.net.features(x[:4])  # warm-up
    bare, piped = [], []
    for r in range(args.repeats):
        paths, _ = make_photos(tmp, args.photos, seed=100 + r)
        t = time.perf_counter()
        with torch.inference_mode():
            for _ in range(0, args.photos, args.batch):
                encoder.net.features(x)
        bare.append(args.photos / (time.perf_counter() - t))
        features._CACHE.clear()
        t = time.perf_counter()
        encoder.embed(paths)
        piped.append(args.photos / (time.perf_counter() - t))
    ratio = [b / e for b, e in zip(bare, piped)]
    print(f"bare forward: {summary(bare, 'img/s')}")
    print(f"embedding (decode + crop + forward): {summary(piped, 'img/s')}")
    print(f"bare / embedding: {summary(ratio, 'x')} (target <= 1.3)")

    fits, preds = [], []
    for r in range(args.repeats):
        paths, labels = make_photos(tmp, 50, seed=200 + r)
        features._CACHE.clear()
        t = time.perf_counter()
        clf = FewShotImageClassifier(method="logistic").fit(paths, labels)
        fits.append(time.perf_counter() - t)
        new, _ = make_photos(tmp, 6, seed=300 + r)
        for path in new[1:]:
            clf.predict([new[0]])  # warm: the loaded model's first call
            t = time.perf_counter()
            clf.predict([path])
            preds.append(time.perf_counter() - t)
    print(f"frozen fit, 10 classes x 5 photos: {summary(fits, 's')} (target < 15 s)")
    print(f"one prediction, model loaded: {summary([1000 * v for v in preds], 'ms')} (target < 100 ms)")


if __name__ == "__main__":
    main()
