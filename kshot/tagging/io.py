"""Reading and writing tagged sentences; BIO <-> IO conversion; entity spans.

Readers (CoNLL, JSONL) live in ``kshot.data.conll`` and are re-exported here. ``read_tagged`` picks the
format by suffix (``.jsonl`` / ``.json``: JSONL, else CoNLL); ``read_sentences`` also takes plain text
(one sentence per line, tokenised by ``tokenize``). Writers are atomic (temp file + rename).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from ..core.errors import KshotError
from ..core.io import open_input, write_output
from ..data.conll import TaggedData, check_tag, parse_conll, parse_jsonl, read_conll, read_jsonl, tag_type

__all__ = [
    "TaggedData",
    "read_conll",
    "read_jsonl",
    "read_tagged",
    "read_sentences",
    "write_conll",
    "write_jsonl",
    "write_tagged",
    "bio_to_io",
    "io_to_bio",
    "spans",
    "tag_type",
    "tokenize",
]

_TOKEN = re.compile(r"https?://\S+|[@#]?\w+(?:[-'’.]\w+)*|[^\w\s]", re.UNICODE)
JSONL_SUFFIXES = (".jsonl", ".json")


def tokenize(text: str) -> list[str]:
    """Split raw text into tokens: URLs, @mentions/#hashtags, words (with inner - ' .), punctuation."""
    return _TOKEN.findall(text)


def read_tagged(path) -> TaggedData:
    """CoNLL or JSONL by suffix (``-``: standard input, JSONL when its first line is a JSON object)."""
    if str(path) == "-":
        lines = sys.stdin.read().splitlines()
        jsonl = next((ln for ln in lines if ln.strip()), "").lstrip().startswith("{")
        return (parse_jsonl if jsonl else parse_conll)(lines, "stdin", "stdin")
    return read_jsonl(path) if Path(path).suffix.lower() in JSONL_SUFFIXES else read_conll(path)


def _looks_like_conll(lines: list[str]) -> bool:
    lines = [ln for ln in lines[:50] if ln.strip()]
    return bool(lines) and all("\t" in ln or len(ln.split()) == 2 and _is_tag(ln.split()[1]) for ln in lines)


def _is_tag(tag: str) -> bool:
    try:
        check_tag(tag, "")
        return True
    except KshotError:
        return False


def read_sentences(path) -> tuple[list[list[str]], str]:
    """Sentences to tag from ``path`` (``-``: standard input) and the format found: ``jsonl``, ``conll``
    (tags, if any, are ignored) or ``text`` (one sentence per line, tokenised)."""
    with open_input(path) as f:
        lines = f.read().splitlines()
    suffix = "" if str(path) == "-" else Path(path).suffix.lower()
    first = next((ln for ln in lines if ln.strip()), "")
    if suffix in JSONL_SUFFIXES or (not suffix and first.lstrip().startswith("{")):
        return _read_jsonl_tokens(lines, path), "jsonl"
    if suffix in (".conll", ".bio", ".iob", ".tsv") or _looks_like_conll(lines):
        return _read_conll_tokens(lines, path), "conll"
    sentences = [s for s in (tokenize(line) for line in lines if line.strip()) if s]
    if not sentences:
        raise KshotError(f"{path} holds no text to tag (an empty file?)")
    return sentences, "text"


def _read_jsonl_tokens(lines: list[str], path) -> list[list[str]]:
    out = []
    for lineno, line in enumerate(lines, 1):
        if line.strip():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise KshotError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            toks = obj.get("tokens") if isinstance(obj, dict) else None
            if not isinstance(toks, list) or not toks or not all(isinstance(t, str) and t.strip() for t in toks):
                raise KshotError(f"{path}:{lineno}: expected an object with a non-empty list of strings 'tokens'")
            out.append(toks)
    if not out:
        raise KshotError(f"{path} holds no sentences (an empty file?)")
    return out


def _read_conll_tokens(lines: list[str], path) -> list[list[str]]:
    out, cur = [], []
    for line in lines:
        if not line.strip():
            if cur:
                out.append(cur)
            cur = []
            continue
        token = (line.split("\t") if "\t" in line else line.split())[0].strip()
        if token != "-DOCSTART-":
            cur.append(token)
    if cur:
        out.append(cur)
    if not out:
        raise KshotError(f"{path} holds no sentences (an empty file?)")
    return out


def _check_lengths(sentences, tags) -> None:
    if len(sentences) != len(tags):
        raise KshotError(f"got {len(sentences)} sentences but {len(tags)} tag sequences")
    for i, (s, t) in enumerate(zip(sentences, tags)):
        if len(s) != len(t):
            raise KshotError(f"sentence {i} has {len(s)} tokens but {len(t)} tags")


def write_conll(path, sentences, tags) -> None:
    """CoNLL (token TAB tag, a blank line after each sentence) to ``path`` (``-``: standard output)."""
    _check_lengths(sentences, tags)
    write_output(
        path,
        "".join("".join(f"{tok}\t{tag}\n" for tok, tag in zip(toks, tgs)) + "\n" for toks, tgs in zip(sentences, tags)),
    )


def write_jsonl(path, sentences, tags) -> None:
    _check_lengths(sentences, tags)
    write_output(
        path,
        "".join(
            json.dumps({"tokens": list(toks), "tags": list(tgs)}, ensure_ascii=False) + "\n"
            for toks, tgs in zip(sentences, tags)
        ),
    )


def write_tagged(path, sentences, tags) -> str:
    """JSONL by suffix, else CoNLL (``-``: CoNLL on standard output); returns the format written."""
    if Path(path).suffix.lower() in JSONL_SUFFIXES:
        write_jsonl(path, sentences, tags)
        return "jsonl"
    write_conll(path, sentences, tags)
    return "conll"


def spans(tags) -> list[tuple[int, int, str]]:
    """Entities ``(start, end_exclusive, type)`` of one sentence's tags, BIO, BIOES or IO.

    As in seqeval's default mode: an ``I-`` after ``O`` or after another type starts an entity."""
    out, start, kind = [], None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, t = (tag, None) if tag == "O" else (tag[0], tag_type(tag))
        begins = prefix in ("B", "S") or (prefix in ("I", "E") and t != kind)
        if start is not None and (tag == "O" or begins):
            out.append((start, i, kind))
            start, kind = None, None
        if tag != "O" and start is None:
            start, kind = i, t
        if prefix in ("E", "S") and start is not None:
            out.append((start, i + 1, kind))
            start, kind = None, None
    return out


def bio_to_io(tags) -> list[str]:
    """``B-x`` -> ``I-x`` (adjacent entities of the same type merge, as IO cannot separate them)."""
    return ["O" if t == "O" else "I-" + tag_type(t) for t in tags]


def io_to_bio(tags) -> list[str]:
    """Tags of any scheme -> BIO, entity by entity (``spans``)."""
    out = ["O"] * len(tags)
    for start, end, kind in spans(tags):
        out[start] = "B-" + kind
        for i in range(start + 1, end):
            out[i] = "I-" + kind
    return out
