"""Omniglot (Lake et al. 2015) at 28x28, with the Lake background/evaluation split and the
Vinyals split (1,028 / 172 / 423 characters, each in 4 rotations).

Reads, under ``<data root>/omniglot/``, whichever form is there:

* ``images_background.npz`` / ``images_evaluation.npz`` (a lossless NumPy packing of the original
  zips: ``images`` bool ``[chars, 20, 105, 105]``, True = background);
* the original ``images_background.zip`` / ``images_evaluation.zip`` from github.com/brendenlake/omniglot;
* or their extracted folders ``images_background/Alphabet/characterNN/*.png``.

The Vinyals split files are read from ``splits/vinyals/{train,val,test,trainval}.txt``.
Missing files are downloaded (sha256-checked) when a network is available.
"""

from __future__ import annotations

import functools
import io
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import ChecksumError, DataError, KshotError
from ..core.io import download, verify_sha256
from .base import LabeledData
from .store import data_root

FOLDER = "omniglot"
SETS = ("background", "evaluation")
VINYALS_SPLITS = ("train", "val", "test", "trainval")
LAKE_SPLITS = {"background": "background", "evaluation": "evaluation", "train": "background", "test": "evaluation"}

_NPZ_SOURCE = "https://raw.githubusercontent.com/bitsandscraps/omniglot/b0481240b7eb42393285a93ce7d2f266ff10c62b/"
_SPLIT_SOURCE = (
    "https://raw.githubusercontent.com/jakesnell/prototypical-networks/"
    "c9bb4d258267c11cb6e23f0a19242d24ca98ad8a/data/omniglot/"
)

# relative path -> (download url, sha256)
FILES = {
    "images_background.npz": (
        _NPZ_SOURCE + "images_background.npz",
        "8bf84167413cd00beacdce3fe582f780ab538d8dbef043a6d688f2527bbce199",
    ),
    "images_evaluation.npz": (
        _NPZ_SOURCE + "images_evaluation.npz",
        "0b84c7ffd94c4841c0040e529c86a82eaaccb986d8eadad5673f7991b7475276",
    ),
    "splits/vinyals/train.txt": (
        _SPLIT_SOURCE + "splits/vinyals/train.txt",
        "984522c194c30fb678ce53304a160a42faf5403ad4f9a67010f32dd3a35738e0",
    ),
    "splits/vinyals/val.txt": (
        _SPLIT_SOURCE + "splits/vinyals/val.txt",
        "11f99e54faee3e26f53d3231c1cceac5bf7b8730e9be31cb6dab256551dc0c1a",
    ),
    "splits/vinyals/test.txt": (
        _SPLIT_SOURCE + "splits/vinyals/test.txt",
        "845264cc5c156180828ccf17915668b17ee21424d0170df6e7d81676aa5d1204",
    ),
    "splits/vinyals/trainval.txt": (
        _SPLIT_SOURCE + "splits/vinyals/trainval.txt",
        "5276ae50c755596d0bff7f2284e85625695549a85ee6e36b6491ad1e5d1cc26a",
    ),
}

# Alphabets in the order of the original character ids (background 1-964, evaluation 965-1623),
# with their number of characters; the npz rows follow this order.
ALPHABETS = {
    "background": [
        ("Arcadian", 26),
        ("Armenian", 41),
        ("Asomtavruli_(Georgian)", 40),
        ("Balinese", 24),
        ("Bengali", 46),
        ("Blackfoot_(Canadian_Aboriginal_Syllabics)", 14),
        ("Braille", 26),
        ("Cyrillic", 33),
        ("Early_Aramaic", 22),
        ("Syriac_(Estrangelo)", 23),
        ("Anglo-Saxon_Futhorc", 29),
        ("Futurama", 26),
        ("Grantha", 43),
        ("Greek", 24),
        ("Gujarati", 48),
        ("Hebrew", 22),
        ("Japanese_(hiragana)", 52),
        ("Inuktitut_(Canadian_Aboriginal_Syllabics)", 16),
        ("Malay_(Jawi_-_Arabic)", 40),
        ("Japanese_(katakana)", 47),
        ("Korean", 40),
        ("Latin", 26),
        ("Alphabet_of_the_Magi", 20),
        ("Mkhedruli_(Georgian)", 41),
        ("Burmese_(Myanmar)", 34),
        ("N_Ko", 33),
        ("Ojibwe_(Canadian_Aboriginal_Syllabics)", 14),
        ("Sanskrit", 42),
        ("Tagalog", 17),
        ("Tifinagh", 55),
    ],
    "evaluation": [
        ("Angelic", 20),
        ("Atemayar_Qelisayer", 26),
        ("Atlantean", 26),
        ("Aurek-Besh", 26),
        ("Avesta", 26),
        ("Ge_ez", 26),
        ("Glagolitic", 45),
        ("Gurmukhi", 45),
        ("Kannada", 41),
        ("Keble", 26),
        ("Malayalam", 47),
        ("Manipuri", 40),
        ("Mongolian", 30),
        ("Old_Church_Slavonic_(Cyrillic)", 45),
        ("Oriya", 46),
        ("Syriac_(Serto)", 23),
        ("Sylheti", 28),
        ("Tengwar", 25),
        ("Tibetan", 42),
        ("ULOG", 26),
    ],
}


def character_names(image_set: str) -> list[str]:
    """``Alphabet/characterNN`` for each npz row of ``image_set``."""
    return [f"{alphabet}/character{i:02d}" for alphabet, count in ALPHABETS[image_set] for i in range(1, count + 1)]


def _set_sources(folder: Path, image_set: str) -> list[Path]:
    return [folder / f"images_{image_set}.npz", folder / f"images_{image_set}.zip", folder / f"images_{image_set}"]


def missing_files(root=None) -> list[str]:
    """Files (relative to the data root) that the loader needs and cannot find."""
    return [
        f"{FOLDER}/{rel}" + (" (or .zip)" if rel.endswith(".npz") else "") for rel in _needed(data_root(root) / FOLDER)
    ]


def _needed(folder: Path) -> list[str]:
    """Entries of FILES (relative to ``folder``) that are absent; an image set counts as present in
    any of its forms (npz, zip, extracted folder)."""
    needed = [f"images_{s}.npz" for s in SETS if not any(p.exists() for p in _set_sources(folder, s))]
    return needed + [rel for rel in FILES if rel.startswith("splits/") and not (folder / rel).exists()]


def ensure_files(root=None, download_missing: bool = True) -> Path:
    """Make sure the Omniglot files are under the data root; download what is missing."""
    folder = data_root(root) / FOLDER
    needed = _needed(folder)
    errors = []
    for rel in needed:
        if not download_missing:
            errors.append(f"{rel}: not present (download disabled)")
            continue
        url, sha = FILES[rel]
        mirror = os.environ.get("KSHOT_MIRROR")
        if mirror:
            url = f"{mirror.rstrip('/')}/{FOLDER}/{rel}"
        try:
            download(url, folder / rel, sha)
        except ChecksumError:
            raise
        except DataError as exc:  # no network, HTTP error: collect, then say what to put where
            errors.append(str(exc))
    if errors:
        raise DataError(
            f"Omniglot files missing under {folder}: put images_background.npz and "
            "images_evaluation.npz (or images_background.zip / images_evaluation.zip from "
            "github.com/brendenlake/omniglot) and splits/vinyals/{train,val,test,trainval}.txt there, "
            f"or point --data-root / KSHOT_DATA at a folder that has them ({'; '.join(errors)})"
        )
    return folder


def _read_set(folder: Path, image_set: str) -> tuple[list[str], np.ndarray]:
    """Character names and ink images ``[chars, 20, 105, 105]`` (bool, True = ink)."""
    npz, zpath, tree = _set_sources(folder, image_set)
    if npz.exists():
        verify_sha256(npz, FILES[npz.name][1])  # ~10 ms; catches truncated or edited files
        with np.load(npz) as f:
            images = ~f["images"]
        return character_names(image_set), images
    if zpath.exists():
        try:
            with zipfile.ZipFile(zpath) as z:
                files = {n: z.read(n) for n in z.namelist() if n.endswith(".png")}
        except (zipfile.BadZipFile, OSError) as exc:
            raise DataError(f"{zpath} is corrupt or truncated: {exc}") from None
        return _group_pngs({n: io.BytesIO(b) for n, b in files.items()}, zpath)
    if tree.is_dir():
        return _group_pngs({str(p.relative_to(folder)): p for p in tree.rglob("*.png")}, tree)
    raise DataError(f"no Omniglot {image_set} images under {folder}")


def _group_pngs(files: dict, source) -> tuple[list[str], np.ndarray]:
    from PIL import Image

    by_char: dict[str, list] = {}
    for name in sorted(files):
        parts = Path(name).parts
        if len(parts) < 3:
            continue
        by_char.setdefault(f"{parts[-3]}/{parts[-2]}", []).append(files[name])
    if not by_char:
        raise DataError(f"{source}: no Alphabet/characterNN/*.png images found")
    names = sorted(by_char)
    counts = {len(v) for v in by_char.values()}
    if len(counts) != 1:
        raise DataError(f"{source}: characters have different numbers of drawings {sorted(counts)}")
    images = np.stack(
        [np.stack([~np.asarray(Image.open(f).convert("1"), dtype=bool) for f in by_char[n]]) for n in names]
    )
    return names, images


@functools.lru_cache(maxsize=4)
def _load_resized(folder: str, image_set: str, size: int, _stamp) -> tuple[tuple[str, ...], torch.Tensor]:
    names, ink = _read_set(Path(folder), image_set)
    x = torch.from_numpy(ink).float()  # [C, D, H, W], 1 = ink
    c, d, h, w = x.shape
    if (h, w) != (size, size):
        x = F.interpolate(x.reshape(c * d, 1, h, w), size=(size, size), mode="area").reshape(c, d, size, size)
    return tuple(names), x


def _stamp(folder: Path, image_set: str):
    return tuple(
        (str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in _set_sources(folder, image_set) if p.is_file()
    )


def _characters(folder: Path, size: int) -> dict[str, torch.Tensor]:
    chars = {}
    for s in SETS:
        names, x = _load_resized(str(folder), s, size, _stamp(folder, s))
        chars.update(zip(names, x))
    return chars


def load_omniglot(
    split: str = "train", root=None, protocol: str = "vinyals", image_size: int = 28, download: bool = True
) -> LabeledData:
    """Load an Omniglot split as ``LabeledData`` with items ``[N, 1, size, size]`` (1 = ink).

    ``protocol="vinyals"``: split in train / val / test / trainval; each rotation is a class.
    ``protocol="lake"``: split in background / evaluation (train / test are aliases); no rotations.
    """
    if protocol not in ("vinyals", "lake"):
        raise KshotError(f"unknown Omniglot protocol {protocol!r}; choose 'vinyals' or 'lake'")
    allowed = VINYALS_SPLITS if protocol == "vinyals" else tuple(LAKE_SPLITS)
    if split not in allowed:
        raise KshotError(f"unknown Omniglot {protocol} split {split!r}; choose one of: {', '.join(allowed)}")
    if image_size < 8:
        raise KshotError(f"image_size must be >= 8, got {image_size}")
    folder = ensure_files(root, download_missing=download)

    if protocol == "lake":
        image_set = LAKE_SPLITS[split]
        names, x = _load_resized(str(folder), image_set, image_size, _stamp(folder, image_set))
        class_names = list(names)
        items = x.reshape(-1, 1, image_size, image_size)
        labels = np.repeat(np.arange(len(names)), x.shape[1])
    else:
        chars = _characters(folder, image_size)
        lines = [ln.strip() for ln in (folder / f"splits/vinyals/{split}.txt").read_text().splitlines() if ln.strip()]
        blocks, class_names = [], []
        for line in lines:
            char, _, rot = line.rpartition("/")
            if char not in chars or not rot.startswith("rot"):
                raise DataError(
                    f"split file {folder}/splits/vinyals/{split}.txt names {line!r}, "
                    "which is not an Omniglot character/rotation"
                )
            k = int(rot[3:]) // 90
            blocks.append(torch.rot90(chars[char], k, dims=(-2, -1)))
            class_names.append(line)
        x = torch.stack(blocks)
        items = x.reshape(-1, 1, image_size, image_size).contiguous()
        labels = np.repeat(np.arange(len(blocks)), x.shape[1])
    return LabeledData(
        items, labels, class_names, name="omniglot", split=split, meta={"protocol": protocol, "image_size": image_size}
    )
