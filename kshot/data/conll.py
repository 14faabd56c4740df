"""Token-tagged sentences on disk: CoNLL (token and tag per line) and JSONL (``{"tokens", "tags"}``).

CoNLL: one token per line, its tag in the last column (tab- or space-separated; extra columns in
between, as in CoNLL-2003, are ignored), a blank (or whitespace-only) line between sentences,
``-DOCSTART-`` lines skipped. Tags are ``O`` or ``PREFIX-TYPE`` with PREFIX one of B, I, E, S
(``B-creative-work`` is type ``creative-work``: only the first hyphen separates). A malformed line
raises ``KshotError`` naming the file and the line number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import KshotError
from ..core.io import open_input

PREFIXES = ("B", "I", "E", "S")


@dataclass
class TaggedData:
    """Sentences (lists of tokens) with one tag per token."""

    sentences: list[list[str]]
    tags: list[list[str]]
    name: str = ""
    split: str = ""
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sentences)

    @property
    def types(self) -> list[str]:
        """The sorted entity types that occur in the tags."""
        return sorted({tag_type(t) for ts in self.tags for t in ts if t != "O"})

    def subset(self, idx) -> "TaggedData":
        return TaggedData(
            [self.sentences[i] for i in idx], [self.tags[i] for i in idx], self.name, self.split, dict(self.meta)
        )

    def __repr__(self) -> str:
        return f"TaggedData(name={self.name!r}, split={self.split!r}, sentences={len(self)}, types={self.types})"


def tag_type(tag: str) -> str:
    """``B-creative-work`` -> ``creative-work``; ``O`` -> ``O``."""
    return tag if tag == "O" else tag.split("-", 1)[1]


def check_tag(tag: str, where: str) -> str:
    prefix, sep, kind = tag.partition("-")
    if tag != "O" and not (sep and kind and prefix in PREFIXES):
        raise KshotError(
            f"{where}: bad tag {tag!r}; tags are O or B-/I-/E-/S- followed by a type (e.g. B-person, I-creative-work)"
        )
    return tag


def _check_nonempty(sentences, path) -> None:
    if not sentences:
        raise KshotError(f"{path} holds no sentences (an empty file?)")


def read_conll(path, name: str = "", split: str = "") -> TaggedData:
    """Read a CoNLL file (see the module docstring); ``-``: standard input."""
    with open_input(path) as f:
        return parse_conll(f, path, name or _stem(path), split)


def parse_conll(lines, path, name: str = "", split: str = "") -> TaggedData:
    """CoNLL sentences from an iterable of lines (``path`` names them in errors)."""
    sentences, tags, tokens, labels = [], [], [], []
    for lineno, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            if tokens:
                sentences.append(tokens)
                tags.append(labels)
            tokens, labels = [], []
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        fields = [x.strip() for x in fields]
        if fields[0] == "-DOCSTART-":
            continue
        if len(fields) < 2 or not fields[0] or not fields[-1]:
            raise KshotError(
                f"{path}:{lineno}: expected a token and a tag separated by a tab or space, got {line[:60]!r}"
            )
        tokens.append(fields[0])
        labels.append(check_tag(fields[-1], f"{path}:{lineno}"))
    if tokens:
        sentences.append(tokens)
        tags.append(labels)
    _check_nonempty(sentences, path)
    return TaggedData(sentences, tags, name, split)


def read_jsonl(path, name: str = "", split: str = "") -> TaggedData:
    """Read a JSONL file, one ``{"tokens": [...], "tags": [...]}`` object per line; ``-``: standard input."""
    with open_input(path) as f:
        return parse_jsonl(f, path, name or _stem(path), split)


def parse_jsonl(lines, path, name: str = "", split: str = "") -> TaggedData:
    """JSONL sentences from an iterable of lines (``path`` names them in errors)."""
    sentences, tags = [], []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise KshotError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("tokens"), list):
            raise KshotError(f"{where}: expected an object with a list 'tokens' (and 'tags')")
        toks, tgs = obj["tokens"], obj.get("tags")
        if not isinstance(tgs, list) or len(tgs) != len(toks):
            n = len(tgs) if isinstance(tgs, list) else 0
            raise KshotError(f"{where}: {len(toks)} tokens but {n} tags; give one tag per token")
        if not toks or not all(isinstance(t, str) and t.strip() for t in toks):
            raise KshotError(f"{where}: tokens must be a non-empty list of non-empty strings")
        sentences.append(list(toks))
        tags.append([check_tag(str(t), where) for t in tgs])
    _check_nonempty(sentences, path)
    return TaggedData(sentences, tags, name, split)


def _stem(path) -> str:
    return "stdin" if str(path) == "-" else Path(path).stem
