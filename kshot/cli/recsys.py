"""`kshot recsys train|eval|recommend|download` (shorthand `kshot recommend`): cold-start recommendation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from ..core.errors import KshotError
from .common import (
    data_root_option,
    group,
    json_option,
    out_option,
    param_option,
    parse_params,
    parse_shots,
    seed_option,
    shorthand,
)

recsys_app = group(
    "recsys",
    "Cold-start recommendation: train on warm users, evaluate on held-out new users, "
    "recommend for a new user from a few ratings.",
)


def _load_data(spec: dict):
    from ..data import load_dataset
    from ..data.interactions import read_interactions

    if spec.get("ratings"):
        return read_interactions(
            spec["ratings"],
            spec.get("item_features"),
            spec.get("user_features"),
            tuple(spec.get("scale", (1, 5))),
            implicit=bool(spec.get("implicit")),
        )
    return load_dataset(spec["dataset"], "all", root=spec.get("data_root"))


def _fold(spec: dict, data=None):
    from ..recsys.protocol import make_fold

    data = _load_data(spec) if data is None else data
    return make_fold(data, spec["fold"], spec["folds"], spec["seed"], spec["mode"])


def recommender_from(method: str, seed: int, params: dict):
    """A Recommender from ``--method`` and ``-p KEY=VALUE`` settings (constructor parameters by name, the
    other settings into ``params``)."""
    from ..recsys.recommender import Recommender

    own = set(Recommender._get_param_names()) - {"method", "seed", "params"}
    explicit = {
        k: (tuple(v) if k == "candidates" and isinstance(v, list) else v) for k, v in params.items() if k in own
    }
    rest = {k: v for k, v in params.items() if k not in own}
    rec = Recommender(method, seed, params=rest or None, **explicit)
    rec.check_params()
    return rec


@recsys_app.command("train")
def train(
    out: Path = out_option("model directory to write (model.json + model.safetensors)"),
    method: str = typer.Option(
        "auto",
        help="auto (the best of the fast rankers on validation users), or one of: "
        "popularity, group_popularity, ease, successors, knn, rp3beta, ials, gru, sasrec, "
        "melu_rank (rankers); mean, item_mean, bias, demographic, mf, itemknn, "
        "melu, attention, finetune (rating predictors); random",
    ),
    dataset: str = typer.Option("movielens-100k", help="dataset name (see `kshot datasets`)"),
    ratings: Optional[Path] = typer.Option(
        None, help="your own interactions file (CSV/JSONL: user,item,rating[,timestamp]) instead of --dataset"
    ),
    implicit: bool = typer.Option(
        False,
        "--implicit",
        help="with --ratings: interactions without ratings (user,item[,timestamp]); every one counts",
    ),
    item_features: Optional[Path] = typer.Option(None, help="with --ratings: item features CSV (item[,title],...)"),
    user_features: Optional[Path] = typer.Option(None, help="with --ratings: user features CSV (user,...)"),
    scale: Optional[List[float]] = typer.Option(None, help="with --ratings: lowest and highest rating (default 1 5)"),
    fold: int = typer.Option(0, help="test fold (its users are held out)"),
    folds: int = typer.Option(5, help="number of folds over users"),
    mode: str = typer.Option("user", help="user, item or both (cold start of what)"),
    seed: int = seed_option("seed of the folds and of the method"),
    data_root: Optional[str] = data_root_option(),
    param: Optional[List[str]] = param_option(
        "setting KEY=VALUE (fixes it instead of tuning it; repeatable), "
        'e.g. -p lam=500 -p \'candidates=["ease","knn"]\''
    ),
):
    """Fit a cold-start recommender on the warm users of one fold, tuned on its validation users."""
    from rich.console import Console

    if scale is not None and len(scale) != 2:
        raise KshotError(f"--scale takes two numbers (lowest highest), got {len(scale)}")
    if (implicit or item_features or user_features or scale) and not ratings:
        raise KshotError("--implicit, --item-features, --user-features and --scale go with --ratings (your own file)")
    rec = recommender_from(method, seed, parse_params(param))
    spec = {
        "dataset": None if ratings else dataset,
        "data_root": data_root,
        "fold": fold,
        "folds": folds,
        "seed": seed,
        "mode": mode,
        "ratings": str(ratings.resolve()) if ratings else None,
        "implicit": implicit,
        "item_features": str(item_features.resolve()) if item_features else None,
        "user_features": str(user_features.resolve()) if user_features else None,
        "scale": list(scale) if scale else [1, 5],
    }
    f = _fold(spec)
    rec.fit(f.train, f.val)
    rec.save(out, extra={"data": spec})
    chosen = f" chose {rec.chosen_} on the validation users" if rec.method == "auto" else ""
    Console().print(
        f"{method} fitted on {len(f.train)} warm interactions ({mode} cold start, fold {fold}/{folds}, "
        f"{len(f.val)} validation and {len(f.test)} test tasks);{chosen} settings {rec.method_.params}; "
        f"saved to {out}"
    )


@recsys_app.command("eval", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def evaluate(
    ctx: typer.Context,
    run: Path = typer.Argument(..., help="model directory written by `kshot recsys train`"),
    shots: Optional[List[str]] = typer.Option(
        None, "--shots", "--shot", help="K values, e.g. --shots 0,1,3,5,10 (the default)"
    ),
    as_json: bool = json_option(),
):
    """Score a trained recommender on its fold's test users for each K (mean ± 95% CI over users)."""
    from rich.console import Console
    from rich.table import Table

    from ..recsys.protocol import RATING_METRICS, TOPN_METRICS, evaluate_tasks, summarize
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
        raise KshotError(
            f"K={bad[0]} is larger than the {f.max_shot} support ratings the protocol keeps per "
            f"test user (allowed: 0..{f.max_shot})"
        )
    summary = summarize(
        [evaluate_tasks(rec.method_, f.train, f.test, sorted(set(shots)), spec["seed"])], f.train.n_items
    )
    result = {
        "method": rec.method,
        "chosen": rec.chosen_,
        "fold": spec["fold"],
        "mode": spec["mode"],
        "test_tasks": len(f.test),
        "shots": {str(k): v for k, v in summary.items()},
    }
    if as_json:
        typer.echo(json.dumps(result))
        return
    cell = lambda s: "–" if s["mean"] is None else f"{s['mean']:.3f}" + (f" ± {s['ci95']:.3f}" if s["ci95"] else "")  # noqa: E731
    metrics = TOPN_METRICS if not rec.method_.predicts_ratings else (*RATING_METRICS, *TOPN_METRICS)
    name = rec.method if rec.chosen_ == rec.method else f"{rec.method} ({rec.chosen_})"
    table = Table("K", *metrics, title=f"{name}, fold {spec['fold']} ({len(f.test)} test users; mean ± 95% CI)")
    for k, row in summary.items():
        table.add_row(str(k), *(cell(row[m]) for m in metrics))
    Console().print(table)


@recsys_app.command("download")
def download(data_root: Optional[str] = data_root_option()):
    """Fetch the official MovieLens-100K zip (sha256 checked) and unpack it under the data root."""
    from ..data.movielens import download_movielens

    typer.echo(f"MovieLens-100K files in {download_movielens(data_root)}")


def _user_rows(path, what: str) -> tuple[list, bool]:
    """``(rows, has_ratings)``: the rows of a CSV file with a header ``item[,rating]`` (``-``: standard
    input) as ``(line, item, rating text)``; one-line errors for a missing file, no header, no item column."""
    import csv

    from ..core.io import open_input

    if str(path) != "-" and not Path(path).is_file():
        raise KshotError(f"{what} file {path} does not exist")
    with open_input(path) as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None:
            raise KshotError(f"{path} is empty; it needs a header item[,rating] and one row per item")
        if "item" not in reader.fieldnames:
            raise KshotError(f"{path} needs a column item (and rating for ratings); has {','.join(reader.fieldnames)}")
        has = "rating" in reader.fieldnames
        rows = [
            (n, (row["item"] or "").strip(), (row.get("rating") or "").strip() if has else "")
            for n, row in enumerate(reader, 2)
        ]
    seen = set()
    for n, item, _ in rows:
        if not item:
            raise KshotError(f"{path}:{n}: empty item")
        if item in seen:
            raise KshotError(f"{path}:{n}: item {item!r} is given twice; keep one row per item")
        seen.add(item)
    return rows, has


def read_user_ratings(path) -> dict | list:
    """The user's items: ``item,rating`` rows as a dict, or ``item`` rows (no rating column: clicks, views)
    as a list; a header alone is an empty list (a newcomer with nothing yet)."""
    rows, has = _user_rows(path, "ratings")
    if not has:
        return [item for _, item, _ in rows]
    out = {}
    for n, item, text in rows:
        try:
            out[item] = float(text)
        except ValueError:
            raise KshotError(f"{path}:{n}: rating {text!r} is not a number") from None
    return out


def read_answers(path) -> list[tuple[str, float | None]]:
    """Onboarding answers in the order given: ``item,rating`` rows, the rating a number or ``not seen``
    (or empty)."""
    from ..recsys.onboarding import NOT_SEEN

    rows, has = _user_rows(path, "answers")
    if not has:
        raise KshotError(f"{path} needs columns item,rating (rating: a number, or 'not seen')")
    out = []
    for n, item, text in rows:
        if text.lower() in NOT_SEEN:
            out.append((item, None))
            continue
        try:
            out.append((item, float(text)))
        except ValueError:
            raise KshotError(f"{path}:{n}: answer {text!r} is neither a rating nor 'not seen'") from None
    return out


def _user_model(run: Path):
    from ..recsys.recommender import Recommender

    rec = Recommender.load(run)
    if rec.extra_.get("data", {}).get("mode", "user") != "user":
        raise KshotError(
            f"{run} was trained for {rec.extra_['data']['mode']} cold start; this needs a "
            "user cold-start model (kshot recsys train --mode user)"
        )
    return rec


def _because(row: dict) -> str:
    return "; ".join(f"{b['title']} ({100 * b['share']:.0f}%)" for b in row.get("because", [])) or "–"


@recsys_app.command("recommend")
@shorthand("recommend", "recsys recommend")
def recommend(
    run: Path = typer.Argument(..., help="model directory written by `kshot recsys train`"),
    ratings: str = typer.Option(
        ...,
        "--ratings",
        help="CSV with columns item,rating (item: id or exact title), "
        "or a column item alone (clicks, views); - for stdin",
    ),
    top: int = typer.Option(10, "--top", "-n", "--n", help="how many items to recommend"),
    include_rated: bool = typer.Option(False, help="also list the items you rated"),
    explain: bool = typer.Option(False, "--explain", help="say which of your items led to each recommendation"),
    as_json: bool = json_option(),
):
    """Recommend items for a new user from a few ratings or items (a trained `kshot recsys` model)."""
    from rich.console import Console
    from rich.table import Table

    rec = _user_model(run)
    user = read_user_ratings(ratings)
    rows = rec.recommend(user, k=top, exclude_rated=not include_rated, explain=explain)
    if as_json:
        typer.echo(
            json.dumps({"method": rec.method, "chosen": rec.chosen_, "items": len(user), "recommendations": rows})
        )
        return
    table = Table(
        "#",
        "item",
        "title",
        "predicted" if rec.method_.predicts_ratings else "score",
        *(("because",) if explain else ()),
        title=f"top {len(rows)} for a new user with {len(user)} {'ratings' if isinstance(user, dict) else 'items'} "
        f"({rec.chosen_})",
    )
    for n, r in enumerate(rows, 1):
        table.add_row(str(n), r["item"], r["title"], f"{r['score']:.2f}", *((_because(r),) if explain else ()))
    Console().print(table)


@recsys_app.command("ask")
def ask(
    run: Path = typer.Argument(..., help="model directory written by `kshot recsys train`"),
    n: int = typer.Option(10, "--n", "-n", help="how many items to ask about"),
    answers: Optional[str] = typer.Option(
        None,
        "--answers",
        help="CSV item,rating of the answers so far, in "
        "order (rating: a number or 'not seen'); the next items follow them",
    ),
    strategy: str = typer.Option("adaptive", help="adaptive (what the model now ranks highest), popular, random"),
    top: int = typer.Option(0, "--recommend", help="also recommend this many items from the answers"),
    as_json: bool = json_option(),
):
    """Which items to ask a newcomer about first (onboarding); with --answers, the next ones."""
    from rich.console import Console
    from rich.table import Table

    rec = _user_model(run)
    session = rec.onboard(strategy)
    given = read_answers(answers) if answers else []
    # The replay: a batch of n items is asked, answered in order, and only then the next batch; a batch
    # answered in part is shown again without new items, so a later call rebuilds the same batches.
    start = 0  # where the current batch begins in session.asked
    session.ask(n)
    for item, rating in given:
        if not session.pending():
            start = len(session.asked)
            session.ask(n)
        session.answer(item, rating)
    begun = any(i in session.answers for i in session.asked[start:])
    waiting = len(session.pending()) if begun else 0
    rows = session.ask(waiting or n)
    recs = session.recommend(top) if top else []
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "method": rec.chosen_,
                    "strategy": strategy,
                    "answered": len(given),
                    "seen": int(len(session.support()[0])),
                    "ask": rows,
                    "still_to_answer": waiting,
                    "recommendations": recs,
                }
            )
        )
        return
    title = f"ask a newcomer about these {len(rows)} ({strategy}, after {len(given)} answers)"
    if waiting:
        title = f"still to answer from the last batch: {len(rows)} ({strategy}, after {len(given)} answers)"
    table = Table("#", "item", "title", title=title)
    for i, r in enumerate(rows, 1):
        table.add_row(str(i), r["item"], r["title"])
    Console().print(table)
    if recs:
        out = Table("#", "item", "title", title=f"top {len(recs)} from the answers")
        for i, r in enumerate(recs, 1):
            out.add_row(str(i), r["item"], r["title"])
        Console().print(out)
