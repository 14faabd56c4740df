"""The whole tree passes ruff's checks and is ruff-formatted (config: [tool.ruff] in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def ruff(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize("args", [("check", "."), ("format", "--check", ".")], ids=["check", "format"])
def test_the_tree_is_clean(args):
    r = ruff(*args)
    assert r.returncode == 0, f"ruff {' '.join(args)}:\n{r.stdout}{r.stderr}"


def test_the_config_catches_what_it_should(tmp_path):
    """The check is not vacuous: the project's config flags an unused import and an unsorted block, and
    the formatter flags a badly formatted file."""
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (tmp_path / "bad.py").write_text("import sys\nimport os\nx=os.sep\n")
    check = ruff("check", "--no-cache", "bad.py", cwd=tmp_path)
    assert check.returncode == 1 and "F401" in check.stdout and "I001" in check.stdout
    assert ruff("format", "--check", "--no-cache", "bad.py", cwd=tmp_path).returncode == 1
