"""Shared pieces of the benchmark scripts: machine description, matmul peak, the rows they write into the
docs' domain pages (``docs/<domain>.md``)."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import torch

from kshot.core.io import atomic_write

DOCS = Path(__file__).resolve().parents[1] / "docs"
DOMAINS = ("images", "text", "tagging", "recsys", "serve")


def doc_page(domain: str) -> Path:
    """The docs page of ``domain`` (``docs/<domain>.md``), where that domain's benchmarks write their rows."""
    if domain not in DOMAINS:
        raise ValueError(f"no docs page for domain {domain!r}; the domains are {', '.join(DOMAINS)}")
    return DOCS / f"{domain}.md"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()}-core {cpu}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def matmul_gflops(n: int = 2048, repeats: int = 20) -> float:
    """Measured fp32 matrix-multiply throughput (median of ``repeats`` n x n products)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    times.sort()
    return 2 * n**3 / times[len(times) // 2] / 1e9


def upsert_row(section: str, header: list[str], key: str, row: list[str], path: Path) -> None:
    """Insert or replace the row whose first cell is ``key`` in the table under ``## section`` of the docs
    page ``path`` (that table only: rows with the same first cell in the section's other tables are left
    alone). The page must exist (``doc_page(domain)``); a missing section or table is added to it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"docs page {path} does not exist; benchmarks write into an existing page "
            f"(doc_page(domain) for {', '.join(DOMAINS)})"
        )
    text = path.read_text()
    head = f"## {section}"
    table_head = "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
    line = "| " + " | ".join([key, *row]) + " |\n"
    found = re.search(r"^" + re.escape(head) + r"[ \t]*$", text, re.M)  # the heading line itself, not a ### one
    if not found:
        text = text.rstrip("\n") + f"\n\n{head}\n\n{table_head}"
        found = re.search(r"^" + re.escape(head) + r"[ \t]*$", text, re.M)
    start = found.start()
    nxt = text.find("\n## ", start + len(head))
    block = text[start:] if nxt < 0 else text[start : nxt + 1]
    if table_head not in block:
        block = block.rstrip("\n") + "\n\n" + table_head
    t0 = block.index(table_head)
    t1 = block.find("\n\n", t0)
    t1 = len(block) if t1 < 0 else t1 + 1  # the table: its head and the rows up to the first blank line
    table = block[t0:t1] if block[t0:t1].endswith("\n") else block[t0:t1] + "\n"
    pattern = re.compile(r"^\| " + re.escape(key) + r" \|.*\n", re.M)
    table = pattern.sub(lambda _: line, table, count=1) if pattern.search(table) else table + line
    block = block[:t0] + table + block[t1:]
    if not block.endswith("\n"):
        block += "\n"
    text = text[:start] + block + ("" if nxt < 0 else text[nxt + 1 :])
    with atomic_write(path, "w") as f:
        f.write(text)


def parse_sets(items: list[str], known, unknown: str, example: str) -> dict:
    """``--set NAME=JSON`` arguments as ``{NAME: value}``. A NAME for which ``known(NAME)`` is false prints
    ``unknown`` (formatted with ``name``) and a value that is not JSON prints a line with ``example``, both
    as one ``error:`` line on stderr, and exit 2."""
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        if not known(name):
            print(f"error: {unknown.format(name=name)}", file=sys.stderr)
            sys.exit(2)
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            print(f"error: --set {name}= needs a JSON value (e.g. {example}), got {value!r}", file=sys.stderr)
            sys.exit(2)
    return out
