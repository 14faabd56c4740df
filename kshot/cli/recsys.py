"""`kshot recsys train|eval|recommend|download` (shorthand `kshot recommend`): cold-start recommendation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from ..core.errors import KshotError
from .common import (data_root_option, group, json_option, out_option, param_option, parse_params, parse_shots,
                     seed_option, shorthand)

recsys_app = group("recsys", "Cold-start recommendation: train on warm users, evaluate on held-out new users, "
                             "recommend for a new user from a few ratings.")


def _load_data(spec: dict):
    from ..data import load_dataset
    from ..data.interactions import read_interactions

    if spec.get("ratings"):
        return read_interactions(spec["ratings"], spec.get("item_features"), spec.get("user_features"),
                                 tuple(spec.get("scale", (1, 5))))
    return load_dataset(spec["dataset"], "all", root=spec.get("data_root"))


def _fold(spec: dict, data=None):
    from ..recsys.protocol import make_fold

    data = _load_data(spec) if data is None else data
    return make_fold(data, spec["fold"], spec["folds"], spec["seed"], spec["mode"])


@recsys_app.command("train")
def train(
    out: Path = out_option("model directory to write (model.json + model.safetensors)"),
    method: str = typer.Option("bias", help="mean, item_mean, bias, demographic, mf, itemknn, popularity, "
                                            "random, melu, attention, finetune"),
    dataset: str = typer.Option("movielens-100k", help="dataset name (see `kshot datasets`)"),
    ratings: Optional[Path] = typer.Option(None, help="your own ratings file (CSV/JSONL: user,item,rating[,timestamp]) instead of --dataset"),
    item_features: Optional[Path] = typer.Option(None, help="with --ratings: item features CSV (item[,title],...)"),
    user_features: Optional[Path] = typer.Option(None, help="with --ratings: user features CSV (user,...)"),
    scale: Optional[List[float]] = typer.Option(None, help="with --ratings: lowest and highest rating (default 1 5)"),
    fold: int = typer.Option(0, help="test fold (its users are held out)"),
    folds: int = typer.Option(5, help="number of folds over users"),
    mode: str = typer.Option("user", help="user, item or both (cold start of what)"),
    seed: int = seed_option("seed of the folds and of the method"),
    data_root: Optional[str] = data_root_option(),
    param: Optional[List[str]] = param_option("method setting KEY=VALUE (fixes it; repeatable)"),
):
    """Fit a cold-start recommender on the warm users of one fold, tuned on its validation users."""
    from rich.console import Console

    from ..recsys.methods import METHODS
    from ..recsys.recommender import Recommender

    if method not in METHODS:
        raise KshotError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    if scale is not None and len(scale) != 2:
        raise KshotError(f"--scale takes two numbers (lowest highest), got {len(scale)}")
    spec = {"dataset": None if ratings else dataset, "data_root": data_root, "fold": fold, "folds": folds,
            "seed": seed, "mode": mode,
            "ratings": str(ratings.resolve()) if ratings else None,
            "item_features": str(item_features.resolve()) if item_features else None,
            "user_features": str(user_features.resolve()) if user_features else None,
            "scale": list(scale) if scale else [1, 5]}
    params = parse_params(param)
    rec = Recommender(method, seed, **params)
    f = _fold(spec)
    rec.fit(f.train, f.val)
    rec.save(out, extra={"data": spec})
    Console().print(f"{method} fitted on {len(f.train)} warm ratings ({mode} cold start, fold {fold}/{folds}, "
                    f"{len(f.val)} validation and {len(f.test)} test tasks); settings {rec.method_.params}; "
                    f"saved to {out}")


@recsys_app.command("eval", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def evaluate(
    ctx: typer.Context,
    run: Path = typer.Argument(..., help="model directory written by `kshot recsys train`"),
    shots: Optional[List[str]] = typer.Option(None, "--shots", "--shot", help="K values, e.g. --shots 0,1,3,5,10 (the "
                                              "default)"),
    as_json: bool = json_option(),
):
    """Score a trained recommender on its fold's test users for each K (mean ± 95% CI over users)."""
    from rich.console import Console
    from rich.table import Table

    from ..recsys.protocol import METRICS, evaluate_tasks, summarize
    from ..recsys.recommender import Recommender

    # --shots 0,1,3 or, as before, --shots 0 1 3 (the values after the first arrive as extra arguments)
    extra = parse_shots(ctx.args, minimum=0)
    shots = [*(parse_shots(shots, minimum=0) or ([] if extra else [0, 1, 3, 5, 10])), *extra]
    rec = Recommender.load(run)
    spec = rec.extra_.get("data")
    if not spec:
        raise KshotError(f"{run} does not record its data and fold; train it with `kshot recsys train`")
    f = _fold(spec)
    bad = [k for k in shots if k < 0 or k > f.max_shot]
    if bad:
        raise KshotError(f"K={bad[0]} is larger than the {f.max_shot} support ratings the protocol keeps per "
                         f"test user (allowed: 0..{f.max_shot})")
    summary = summarize([evaluate_tasks(rec.method_, f.train, f.test, sorted(set(shots)), spec["seed"])])
    result = {"method": rec.method, "fold": spec["fold"], "mode": spec["mode"], "test_tasks": len(f.test),
              "shots": {str(k): v for k, v in summary.items()}}
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table("K", *METRICS, title=f"{rec.method}, fold {spec['fold']} ({len(f.test)} test users)")
    for k, row in summary.items():
        table.add_row(str(k), *("–" if row[m]["mean"] is None else f"{row[m]['mean']:.3f} ± {row[m]['ci95'] or 0:.3f}"
                                for m in METRICS))
    Console().print(table)


@recsys_app.command("download")
def download(data_root: Optional[str] = data_root_option()):
    """Fetch the official MovieLens-100K zip (sha256 checked) and unpack it under the data root."""
    from ..data.movielens import download_movielens

    typer.echo(f"MovieLens-100K files in {download_movielens(data_root)}")


def read_user_ratings(path) -> dict:
    """``item,rating`` rows of a CSV file (``-``: standard input) as a dict (one-line errors for every bad input)."""
    import csv

    from ..core.io import open_input

    if str(path) != "-" and not Path(path).is_file():
        raise KshotError(f"ratings file {path} does not exist")
    with open_input(path) as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None:
            raise KshotError(f"{path} is empty; it needs a header item,rating and one row per rated item")
        if not {"item", "rating"} <= set(reader.fieldnames):
            raise KshotError(f"{path} needs columns item,rating; has {','.join(reader.fieldnames)}")
        out = {}
        for n, row in enumerate(reader, 2):
            item = (row["item"] or "").strip()
            try:
                rating = float(row["rating"])
            except (TypeError, ValueError):
                raise KshotError(f"{path}:{n}: rating {row['rating']!r} is not a number") from None
            if item in out:
                raise KshotError(f"{path}:{n}: item {item!r} is rated twice; keep one row per item")
            out[item] = rating
    if not out:
        raise KshotError(f"{path} has no ratings (only a header)")
    return out


@recsys_app.command("recommend")
@shorthand("recommend", "recsys recommend")
def recommend(
    run: Path = typer.Argument(..., help="model directory written by `kshot recsys train`"),
    ratings: str = typer.Option(..., "--ratings", help="CSV with columns item,rating (item: id or exact title); "
                                "- for stdin"),
    top: int = typer.Option(10, "--top", "-n", help="how many items to recommend"),
    include_rated: bool = typer.Option(False, help="also list the items you rated"),
    as_json: bool = json_option(),
):
    """Recommend items for a new user from a few ratings (a trained `kshot recsys` model)."""
    from rich.console import Console
    from rich.table import Table

    from ..recsys.recommender import Recommender

    rec = Recommender.load(run)
    if rec.extra_.get("data", {}).get("mode", "user") != "user":
        raise KshotError(f"{run} was trained for {rec.extra_['data']['mode']} cold start; recommend needs a "
                         "user cold-start model (kshot recsys train --mode user)")
    user = read_user_ratings(ratings)
    rows = rec.recommend(user, k=top, exclude_rated=not include_rated)
    if as_json:
        typer.echo(json.dumps({"method": rec.method, "ratings": len(user), "recommendations": rows}))
        return
    table = Table("#", "item", "title", "predicted" if rec.method_.predicts_ratings else "score",
                  title=f"top {len(rows)} for a new user with {len(user)} ratings ({rec.method})")
    for n, r in enumerate(rows, 1):
        table.add_row(str(n), r["item"], r["title"], f"{r['score']:.2f}")
    Console().print(table)
