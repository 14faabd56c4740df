"""The user's photos: decoding any image Pillow reads, and the ways people keep labelled photos.

* ``open_image(item)``: a path, a PIL image or an array (``H x W``, ``H x W x 1|3|4``; uint8, or floats in
  0..1) -> an RGB PIL image. EXIF orientation is applied; greyscale, palette, RGBA (composited on white),
  CMYK and 16-bit images are converted; JPEG, PNG, WebP, BMP, TIFF, GIF (the first frame) are read. A
  file that is missing, not an image, corrupt or truncated, or smaller than ``MIN_SIDE`` pixels a side is
  a one-line ``KshotError`` naming it.
* ``read_folder(root)``: ``root/<label>/*.jpg`` (one sub-folder per class, files in nested folders too).
* ``read_table(path)``: a CSV/TSV/JSONL/JSON table with ``path`` and ``label`` columns (paths relative to
  the table's folder).
* ``expand(inputs)``: files, folders (every image file under them) and glob patterns, for prediction.

Hidden files (``.DS_Store``) and the thumbnails databases of file browsers are ignored everywhere.
"""

from __future__ import annotations

import glob
import io
from pathlib import Path

import numpy as np

from ..core.errors import KshotError

SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
IGNORED = ("thumbs.db", "desktop.ini")
MIN_SIDE = 8


def _ignored(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower() in IGNORED


def is_image_name(path) -> bool:
    return Path(path).suffix.lower() in SUFFIXES


def describe(item) -> str:
    """How an error names an image: its path, else its type."""
    return str(item) if isinstance(item, (str, Path)) else f"a {type(item).__name__} image"


def open_image(item, draft: int | None = None, data: bytes | None = None):
    """``item`` as an RGB PIL image (see the module docstring). ``draft``: a JPEG may be decoded at a reduced
    scale that still leaves at least this many pixels a side (much faster for large photos). ``data``:
    the file's bytes when the caller has read them already."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    name = describe(item)
    if isinstance(item, (str, Path)):
        if data is None:
            path = Path(item)
            if not path.is_file():
                raise KshotError(f"image file {path} does not exist" if not path.exists() else f"{path} is not a file")
            data = path.read_bytes()
        try:
            img = Image.open(io.BytesIO(data))
            if draft and img.format == "JPEG":
                img.draft("RGB", (draft, draft))
            img.load()
            img = ImageOps.exif_transpose(img)
        except (
            UnidentifiedImageError,
            OSError,
            SyntaxError,
            ValueError,
            EOFError,
            Image.DecompressionBombError,
        ) as exc:
            why = (
                "not an image Pillow can read"
                if isinstance(exc, UnidentifiedImageError)
                else f"corrupt or truncated ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
            )
            raise KshotError(f"{name}: {why}") from None
    elif isinstance(item, Image.Image):
        img = item
    elif isinstance(item, np.ndarray) or hasattr(item, "__array__"):
        img = _from_array(np.asarray(item), name)
    else:
        raise KshotError(f"an image must be a file path, a PIL image or an array, got {type(item).__name__}")
    if min(img.size) < MIN_SIDE:
        raise KshotError(f"{name} is {img.size[0]}x{img.size[1]} pixels; images need at least {MIN_SIDE} pixels a side")
    return to_rgb(img)


def _from_array(a: np.ndarray, name: str):
    from PIL import Image

    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)  # C x H x W (a tensor's layout)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise KshotError(f"an image array must be H x W or H x W x 1, 3 or 4 channels, got shape {a.shape}")
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_:
            a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise KshotError(f"{name} holds NaN or infinite values")
        a = np.clip(a * 255.0 if a.max(initial=0) <= 1.0 else a, 0, 255).round().astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(a))


def to_rgb(img):
    """Any PIL mode as RGB: transparency composited on white, 16-bit and float greys scaled to 8 bits."""
    from PIL import Image

    if img.mode == "RGB":
        return img
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        lo, hi = (0.0, 65535.0) if img.mode.startswith("I;16") or a.max(initial=0) > 255 else (0.0, 255.0)
        img = Image.fromarray(np.clip((a - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def _files_under(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not _ignored(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def read_folder(root) -> tuple[list[Path], list[str]]:
    """The photos of ``root/<label>/...`` and their labels (the sub-folder names), sorted. A folder without
    class sub-folders, a class without images, or a file that is not an image is an error naming it."""
    root = Path(root)
    if not root.is_dir():
        raise KshotError(
            f"photo folder {root} does not exist"
            if not root.exists()
            else f"{root} is not a folder; give a folder with one sub-folder per class, or a CSV/JSONL of path,label"
        )
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not _ignored(p))
    if not classes:
        loose = [p.name for p in root.iterdir() if p.is_file() and not _ignored(p)][:3]
        raise KshotError(
            f"{root} has no class sub-folders; put each class's photos in {root}/<label>/"
            + (f" (found only files: {', '.join(loose)})" if loose else "")
        )
    paths, labels = [], []
    for folder in classes:
        files = _files_under(folder)
        for f in files:
            if not is_image_name(f):
                raise KshotError(
                    f"{f} is not an image file (known kinds: {', '.join(SUFFIXES)}); move it out of {root}"
                )
        if not files:
            raise KshotError(f"class folder {folder} holds no images")
        paths += files
        labels += [folder.name] * len(files)
    return paths, labels


def read_table(path) -> tuple[list[Path], list[str]]:
    """Photos and labels from a table with ``path`` and ``label`` columns (CSV, TSV, JSONL or JSON); paths
    are relative to the table's folder unless absolute."""
    from ..data.files import read_table as read_rows

    path = Path(path)
    if not path.is_file():
        raise KshotError(f"label file {path} does not exist" if not path.exists() else f"{path} is not a file")
    table = read_rows(str(path), text_column="path", label_column="label")
    return [p if p.is_absolute() else path.parent / p for p in map(Path, table.texts)], list(table.labels)


def read_labeled(source) -> tuple[list[Path], list[str]]:
    """A folder of class sub-folders or a ``path,label`` table."""
    source = Path(source)
    return read_folder(source) if source.is_dir() or not source.suffix else read_table(source)


def expand(inputs) -> tuple[list[Path], int]:
    """Files, folders (every image file under them, sorted) and glob patterns -> paths, in order, without
    repeats; also the number of non-image files skipped inside folders. A name that matches nothing is an
    error."""
    out, skipped = [], 0
    for item in [inputs] if isinstance(inputs, (str, Path)) else inputs:
        item = str(item)
        path = Path(item)
        if path.is_dir():
            files = _files_under(path)
            images = [f for f in files if is_image_name(f)]
            skipped += len(files) - len(images)
            out += images
        elif path.is_file():
            out.append(path)
        elif glob.has_magic(item):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True) if Path(m).is_file())
            if not matches:
                raise KshotError(f"no file matches {item}")
            out += matches
        else:
            raise KshotError(f"no such file or folder: {item}")
    return list(dict.fromkeys(out)), skipped
