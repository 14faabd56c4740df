"""Every benchmark script imports and answers --help (exit 0), and every shell script is executable bash
that parses: a benchmark that no longer runs against the package fails here, not months later. Scripts run in
parallel subprocesses (each one imports torch), a short timeout each."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
PY = sorted(p for p in BENCH.rglob("*.py") if "__pycache__" not in p.parts)
SCRIPTS = [p for p in PY if 'if __name__ == "__main__":' in p.read_text()]
MODULES = [p for p in PY if p not in SCRIPTS]  # what the scripts share (common.py, serve/traffic.py)
SHELL = sorted(BENCH.rglob("*.sh"))


def _help(script: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    try:
        return subprocess.run(
            [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=90, cwd=ROOT, env=env
        )
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(exc.cmd, -1, exc.stdout or "", f"timed out after {exc.timeout} s")


@pytest.fixture(scope="module")
def helps():
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(SCRIPTS, pool.map(_help, SCRIPTS)))


def test_there_are_benchmarks():
    assert len(SCRIPTS) >= 15 and {p.parent.name for p in SCRIPTS} >= {"images", "serve"}


@pytest.mark.parametrize("script", SCRIPTS, ids=[str(p.relative_to(BENCH)) for p in SCRIPTS])
def test_help_exits_0(helps, script):
    run = helps[script]
    assert run.returncode == 0, f"{script.relative_to(ROOT)} --help: exit {run.returncode}\n{run.stderr[-2000:]}"
    assert "usage:" in run.stdout.lower(), run.stdout[:500]


@pytest.mark.parametrize("module", MODULES, ids=[str(p.relative_to(BENCH)) for p in MODULES])
def test_shared_modules_import(module):
    """A module without a main (imported by the scripts) imports on its own, from its folder."""
    code = f"import sys; sys.path[:0] = [{str(module.parent)!r}, {str(BENCH)!r}]; import {module.stem}"
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 0, run.stderr[-2000:]


@pytest.mark.parametrize("script", SHELL, ids=[str(p.relative_to(BENCH)) for p in SHELL])
def test_shell_scripts_are_executable_bash(script):
    assert script.stat().st_mode & stat.S_IXUSR, f"{script.relative_to(ROOT)} is not executable"
    assert script.read_text().startswith("#!/usr/bin/env bash\n")
    run = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_the_readme_describes_every_script():
    readme = (BENCH / "README.md").read_text()
    for script in [*SCRIPTS, *MODULES, *SHELL]:
        assert f"`{script.name}`" in readme, f"benchmarks/README.md does not describe {script.name}"
