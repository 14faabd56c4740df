"""benchmarks/common.py upsert_row: a benchmark rewrites its own row of docs/results.md and nothing else."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from common import upsert_row  # noqa: E402

DOC = """# Results

## S

| a | b |
|---|---|
| x | 1 |
| y | 2 |

prose

### a later experiment of the same section

| a | c | d |
|---|---|---|
| x | 9 | 9 |

## T

text
"""


def test_only_the_sections_own_table_changes(tmp_path):
    path = tmp_path / "results.md"
    path.write_text(DOC)
    upsert_row("S", ["a", "b"], "x", ["5"], path)   # replaced in S's table, not in the subsection's
    upsert_row("S", ["a", "b"], "z", ["7"], path)   # a new key: appended to S's table
    upsert_row("T", ["a", "b"], "x", ["3"], path)   # a section without its table gets one
    upsert_row("U", ["a", "b"], "x", ["4"], path)   # a new section at the end
    text = path.read_text()
    assert "| x | 1 |" not in text and "| x | 5 |\n| y | 2 |\n| z | 7 |\n\nprose" in text
    assert "| x | 9 | 9 |" in text
    assert "## T\n\ntext\n\n| a | b |\n|---|---|\n| x | 3 |\n" in text
    assert text.endswith("## U\n\n| a | b |\n|---|---|\n| x | 4 |\n")
