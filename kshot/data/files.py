"""Text tables from the user's own files: CSV, TSV, JSONL or a JSON list of objects.

The user names the text column (and the label column, for training data). ``-`` reads standard input
(CSV unless ``fmt`` says otherwise). Every problem is a one-line ``KshotError`` naming the file, row
and column: missing columns, empty or non-text cells, unknown formats, empty files.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import KshotError
from .base import LabeledData

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}


@dataclass
class TextTable:
    rows: list[dict]  # every input row, unchanged (written back by ``kshot predict``)
    columns: list[str]
    texts: list[str]
    labels: list[str] | None
    source: str


def file_format(path: str, fmt: str | None = None) -> str:
    if fmt is not None:
        if fmt not in FORMATS.values():
            raise KshotError(f"unknown file format {fmt!r}; choose one of: csv, tsv, jsonl, json")
        return fmt
    if path == "-":
        return "csv"
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise KshotError(
            f"unknown file format {suffix or '(no extension)'!r} for {path}; use one of: {', '.join(FORMATS)}"
        )
    return FORMATS[suffix]


def _read_rows(path: str, fmt: str) -> tuple[list[dict], list[str]]:
    if path == "-":
        text = sys.stdin.read()
    else:
        if not Path(path).is_file():
            raise KshotError(f"file {path} does not exist")
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise KshotError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if fmt in ("csv", "tsv"):
        try:
            reader = csv.DictReader(io.StringIO(text), delimiter="\t" if fmt == "tsv" else ",")
            rows = [dict(r) for r in reader]
        except csv.Error as exc:
            raise KshotError(f"cannot parse {path} as {fmt.upper()}: {exc}") from None
        return rows, list(reader.fieldnames or [])
    try:
        if fmt == "jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows = json.loads(text) if text.strip() else []
    except json.JSONDecodeError as exc:
        raise KshotError(f"cannot parse {path} as {fmt.upper()}: {exc}") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise KshotError(f"{path} must hold one JSON object per record (a list of objects for .json)")
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return rows, columns


def _column(rows: list[dict], column: str, path: str, what: str) -> list[str]:
    out = []
    for i, row in enumerate(rows, start=1):
        value = row.get(column)
        if isinstance(value, bool) or value is None or (what == "text" and not isinstance(value, str)):
            raise KshotError(f"{path}: row {i} has no {what} in column {column!r} (got {value!r})")
        if what == "label" and not isinstance(value, (str, int)):
            raise KshotError(f"{path}: row {i} column {column!r} must be a string or integer label, got {value!r}")
        value = str(value).strip()
        if not value:
            raise KshotError(f"{path}: row {i} has an empty {what} in column {column!r}")
        out.append(value)
    return out


def read_table(
    path: str, text_column: str = "text", label_column: str | None = None, fmt: str | None = None
) -> TextTable:
    """Read ``path`` (or ``-`` for stdin) and check the named columns."""
    path = str(path)
    rows, columns = _read_rows(path, file_format(path, fmt))
    if not rows:
        raise KshotError(f"{path} holds no rows")
    for column, role in ((text_column, "text"), (label_column, "label")):
        if column is not None and column not in columns:
            raise KshotError(
                f"{role} column {column!r} is not in {path}; its columns are: "
                f"{', '.join(map(str, columns)) or '(none)'}"
            )
    texts = _column(rows, text_column, path, "text")
    labels = _column(rows, label_column, path, "label") if label_column is not None else None
    return TextTable(rows, columns, texts, labels, path)


def write_table(path: str, rows: list[dict], columns: list[str], fmt: str | None = None) -> None:
    """Write rows to ``path`` (``-``: standard output) as CSV/TSV/JSONL/JSON."""
    from ..core.io import atomic_write

    fmt = file_format(str(path), fmt)
    buf = io.StringIO()
    if fmt in ("csv", "tsv"):
        writer = csv.DictWriter(
            buf, fieldnames=columns, delimiter="\t" if fmt == "tsv" else ",", extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rows)
    elif fmt == "jsonl":
        buf.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    else:
        json.dump(rows, buf, ensure_ascii=False, indent=1)
    if str(path) == "-":
        sys.stdout.write(buf.getvalue())
        sys.stdout.flush()
    else:
        with atomic_write(path, "w") as f:
            f.write(buf.getvalue())


def labeled_from_strings(
    texts: list[str], labels: list[str], name: str, split: str, class_names: list[str] | None = None, **meta
) -> LabeledData:
    """Texts with string labels -> LabeledData (class ids follow ``class_names``, default sorted)."""
    class_names = sorted(set(labels)) if class_names is None else list(class_names)
    index = {c: i for i, c in enumerate(class_names)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise KshotError(f"{name}/{split}: labels {unknown[:5]} are not among its classes")
    return LabeledData(
        list(texts),
        np.array([index[y] for y in labels], dtype=np.int64),
        class_names,
        name=name,
        split=split,
        meta=meta,
    )


def load_text_file(
    path: str, text_column: str = "text", label_column: str = "label", fmt: str | None = None
) -> LabeledData:
    """A labelled text file as ``LabeledData`` (classes sorted by name)."""
    table = read_table(path, text_column, label_column, fmt)
    return labeled_from_strings(table.texts, table.labels, Path(str(path)).stem, "file", source=str(path))
