"""`kshot datasets` and `kshot demo`: the commands that belong to no one domain."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import typer

from .common import app, data_root_option


@app.command()
def datasets(data_root: Optional[Path] = data_root_option()):
    """List the datasets, where each looks for its files, and whether they are present."""
    from rich.console import Console
    from rich.table import Table

    from ..data import DATASETS
    from ..data import data_root as resolve_root

    root = resolve_root(data_root)
    table = Table("dataset", "kind", "looks in", "status", "description")
    for info in DATASETS.values():
        missing = info.files(root)
        status = "present" if not missing else "missing: " + ", ".join(missing)
        table.add_row(info.name, info.kind, str(root / info.folder), status, info.description)
    Console().print(table)


@app.command()
def demo(
    omniglot: bool = typer.Option(False, "--omniglot", help="run the Omniglot Prototypical Networks demo instead"),
    method: str = typer.Option(
        "logistic", help="text method: prototype, logistic, setfit, zeroshot, label_prior, finetune"
    ),
    data_root: Optional[str] = typer.Option(
        None, "--data-root", help="(--omniglot) data root holding omniglot/ (default: $KSHOT_DATA)"
    ),
    episodes: int = typer.Option(600, help="(--omniglot) training episodes"),
    out: Optional[Path] = typer.Option(None, help="(--omniglot) keep the run here (default: a temporary folder)"),
):
    """Few-shot intent classification on a built-in customer-service set, offline, in under a minute.

    With --omniglot: a short Omniglot Prototypical Networks run, then 5-way accuracy with its 95% CI.
    """
    if not omniglot:
        from ..text.demo import run_demo

        run_demo(method=method, echo=typer.echo)
        return
    from ..data import load_dataset
    from ..images.evaluation import evaluate
    from ..images.training import TrainConfig, load_method, meta_train

    with tempfile.TemporaryDirectory() as tmp:
        run = out or Path(tmp) / "demo"
        cfg = TrainConfig(
            method="protonet",
            dataset="omniglot",
            way=60,
            shot=1,
            query=5,
            episodes=episodes,
            val_every=max(episodes // 3, 1),
            val_episodes=100,
            data_root=data_root,
        )
        typer.echo(f"Training Prototypical Networks on Omniglot ({episodes} episodes of 60-way 1-shot)...")
        meta_train(cfg, run)
        method, _ = load_method(run)
        test = load_dataset("omniglot", "test", root=data_root)
        for way, shot in ((5, 1), (5, 5)):
            score = evaluate(method, test, way, shot, 15, episodes=500, progress=True)
            typer.echo(
                f"Omniglot test, {way}-way {shot}-shot: {100 * score.accuracy:.2f}% "
                f"± {100 * score.ci95:.2f} (95% CI, {score.n} episodes)"
            )
