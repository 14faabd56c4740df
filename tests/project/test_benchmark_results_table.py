"""benchmarks/common.py upsert_row: a benchmark rewrites its own row of its domain's docs page and nothing else."""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import DOCS, DOMAINS, doc_page, upsert_row  # noqa: E402

DOC = """# Page

## S

| a | b |
|---|---|
| x | 1 |
| y | 2 |

prose

### S

| a | b |
|---|---|
| x | 8 |

### a later experiment of the same section

| a | c | d |
|---|---|---|
| x | 9 | 9 |

## T

text
"""


def test_only_the_sections_own_table_changes(tmp_path):
    path = tmp_path / "page.md"
    path.write_text(DOC)
    upsert_row("S", ["a", "b"], "x", ["5"], path)  # replaced in S's table, not in the subsections'
    upsert_row("S", ["a", "b"], "z", ["7"], path)  # a new key: appended to S's table
    upsert_row("T", ["a", "b"], "x", ["3"], path)  # a section without its table gets one
    upsert_row("U", ["a", "b"], "x", ["4"], path)  # a new section at the end
    text = path.read_text()
    assert "| x | 1 |" not in text and "| x | 5 |\n| y | 2 |\n| z | 7 |\n\nprose" in text
    assert "| x | 8 |" in text and "| x | 9 | 9 |" in text  # a ### heading of the same name is not the section
    assert "## T\n\ntext\n\n| a | b |\n|---|---|\n| x | 3 |\n" in text
    assert text.endswith("## U\n\n| a | b |\n|---|---|\n| x | 4 |\n")


def test_the_page_must_exist(tmp_path):
    missing = tmp_path / "nothing.md"
    with pytest.raises(FileNotFoundError, match="nothing.md"):
        upsert_row("S", ["a"], "x", [], missing)
    assert not missing.exists()


def test_doc_page_names_the_domain_pages():
    assert {d: doc_page(d) for d in DOMAINS} == {d: DOCS / f"{d}.md" for d in DOMAINS}
    assert all(doc_page(d).is_file() for d in DOMAINS)
    with pytest.raises(ValueError, match="'image'.*images, text"):
        doc_page("image")


def _sections_written(script: Path) -> list[str]:
    """The section titles a benchmark script writes (its upsert_row calls and SECTION constants)."""
    text = script.read_text()
    return re.findall(r'(?:upsert_row|doc_row)\(\s*"([^"]+)"', text) + re.findall(
        r'^SECTION = "(?:## )?([^"]+)"', text, re.M
    )


def test_every_written_section_is_a_heading_of_its_page():
    scripts = sorted((ROOT / "benchmarks").rglob("*.py"))
    found = 0
    for script in scripts:
        pages = re.findall(r'doc_page\("(\w+)"\)', script.read_text()) or (
            [script.parent.name] if script.parent.name in DOMAINS else []
        )  # benchmarks/<domain>/ writes its page
        for section in _sections_written(script):
            assert pages, f"{script.name} writes {section!r} without doc_page(domain)"
            for page in set(pages):
                lines = doc_page(page).read_text().splitlines()
                assert f"## {section}" in lines, f"{script.name}: docs/{page}.md has no '## {section}'"
                found += 1
    assert found >= 7  # omniglot_methods, omniglot_protonet, conv4_throughput, serve_*, text_vs_setfit


def test_recsys_blocks_are_in_their_page():
    """benchmarks/recsys/coldstart.py and onboarding.py rewrite what lies between their markers in
    docs/recsys.md (their default page)."""
    text = doc_page("recsys").read_text()
    for section in ("user", "item", "onboarding"):
        assert text.count(f"<!-- recsys-{section}:begin -->") == 1 and text.count(f"<!-- recsys-{section}:end -->") == 1
    for name in ("coldstart.py", "onboarding.py"):
        assert (
            "docs/recsys.md" in (ROOT / "benchmarks" / "recsys" / name).read_text()
            or 'doc_page("recsys")' in (ROOT / "benchmarks" / "recsys" / name).read_text()
        )


def test_text_suite_rows_pair_the_seeds_both_systems_ran(tmp_path, real_data_root, monkeypatch):
    """text_vs_setfit.py --write: a set both systems ran gets the paired difference over their common seeds;
    a set only the default ran gets its own accuracy and 'not run' for SetFit; the mean row counts only the
    compared sets."""
    monkeypatch.setenv("KSHOT_DATA", str(real_data_root))
    sys.path.insert(0, str(ROOT / "benchmarks" / "text"))
    import text_vs_setfit as t

    def row(s, system, seed, acc):
        return {"set": s, "system": system, "k": 8, "seed": seed, "eval": "test", "accuracy": acc, "fit_seconds": 10.0}

    log = tmp_path / "log.jsonl"
    rows = [row("mr", "kshot", 0, 0.70), row("mr", "kshot", 1, 0.72), row("mr", "setfit", 0, 0.65)]
    rows += [row("subj", "kshot", 0, 0.90), row("subj", "kshot", 1, 0.80)]
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    page = tmp_path / "text.md"
    page.write_text(f"# Text\n\n## {t.SECTION}\n\nintro\n")
    t.write_table([log], "test", page)
    lines = {line.split(" | ")[0]: line for line in page.read_text().splitlines() if line.startswith("| ")}
    assert "| 0 | 70.0 | 65.0 | **+5.0** (+5.0) |" in lines["| mr, K=8"]  # seed 1 has no SetFit pair
    assert "| 0,1 | 85.0 ± 7.1 | not run | - | 10 / - |" in lines["| subj, K=8"]
    assert "| **+5.0** |" in lines["| mean over the sets above"]  # no held-out set compared
