"""The docs (mkdocs.yml: the domain pages and the API reference from the docstrings) build with --strict:
no broken link, no missing page, no docstring object that cannot be found. Offline: nothing is fetched."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    site = tmp_path / "site"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--quiet",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(site),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    api = (site / "api" / "index.html").read_text()
    for name in (
        "kshot.load",
        "kshot.text.classifier.FewShotClassifier",
        "kshot.tagging.tagger.FewShotTagger",
        "kshot.recsys.recommender.Recommender",
        "kshot.images.training.meta_train",
        "kshot.images.evaluation.evaluate",
        "kshot.images.training.TrainConfig",
        "kshot.core.model_format",
    ):
        assert f'id="{name}"' in api, f"{name} is missing from the API reference"
    for page in ("images", "text", "tagging", "recsys", "serve"):
        assert (site / page / "index.html").is_file()
    # nothing loaded from elsewhere: no script, style sheet or font from another host
    loads = [
        m
        for f in site.rglob("*.html")
        for m in re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="((?:https?:)?//[^"]+)"', f.read_text())
    ]
    assert loads == []
    shutil.rmtree(site)
