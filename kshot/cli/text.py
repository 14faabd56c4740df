"""`kshot text fit|predict|score` (shorthands `kshot fit|predict|score`): the few-shot text classifier."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..core.errors import KshotError
from .common import (
    check_reject_below,
    device_option,
    group,
    json_option,
    out_option,
    param_option,
    parse_params,
    plot_option,
    print_report,
    progress_option,
    reject_below_option,
    seed_option,
    shorthand,
)

text_app = group(
    "text",
    "Few-shot text classification on a pretrained sentence encoder: fit on a few labelled "
    "texts per class, predict, score.",
)


# FewShotClassifier parameters set by `kshot fit` flags of another name, for its errors
FIT_FLAGS = {
    "steps": "--steps",
    "pseudo_per_class": "--pseudo-per-class",
    "self_training_rounds": "--rounds",
    "knn": "--knn",
    "knn_weight": "--knn-weight",
    "time_budget": "--time-budget",
    "device": "--device",
}
DEVICE_HELP = "torch device for the encoder: cpu, cuda, cuda:1, mps"
LOAD_DEVICE_HELP = DEVICE_HELP + " (default: the one the model was fitted on when it is here, else cpu)"


@text_app.command("fit")
@shorthand("fit", "text fit")
def fit(
    train_file: str = typer.Argument(..., help="CSV/TSV/JSONL/JSON file of labelled texts (- for stdin, CSV)"),
    out: Path = out_option(),
    text_column: str = typer.Option("text", help="column holding the texts"),
    label_column: str = typer.Option("label", help="column holding the labels"),
    method: str = typer.Option(
        "auto",
        help="auto (the default: the recipe is chosen from the data within "
        "--time-budget), prototype, logistic, setfit, zeroshot, label_prior or finetune",
    ),
    time_budget: str = typer.Option(
        "120", help="(auto) seconds the fit may take, e.g. 120, 90s, 2m; a small budget keeps the encoder frozen"
    ),
    encoder: str = typer.Option("all-MiniLM-L6-v2", help="sentence encoder: a model name or a local directory"),
    steps: int = typer.Option(200, help="(setfit, finetune) optimisation steps"),
    label_examples: bool = typer.Option(
        False,
        help="(logistic, setfit, finetune) add each label's text "
        "('This text is about {label}') as one more training example",
    ),
    unlabeled: Optional[str] = typer.Option(
        None,
        help="file of unlabelled texts (same --text-column) for "
        "self-training: confident predictions become extra examples",
    ),
    pseudo_per_class: int = typer.Option(80, help="(with --unlabeled) pseudo-labelled texts per class"),
    rounds: int = typer.Option(
        4, help="(with --unlabeled) self-training rounds; the pseudo-labels grow to --pseudo-per-class over them"
    ),
    knn: int = typer.Option(
        0,
        help="(logistic, setfit) blend the probabilities with a vote of the K nearest "
        "training texts, pseudo-labelled ones included (10 helps after --unlabeled; 0: off)",
    ),
    knn_weight: float = typer.Option(0.5, help="(with --knn) weight of the neighbour vote, 0 to 1"),
    seed: int = seed_option(),
    device: str = device_option("cpu", DEVICE_HELP),
    progress: bool = progress_option(),
    param: Optional[List[str]] = param_option(
        "any other FewShotClassifier parameter KEY=VALUE, e.g. -p C=10 (repeatable)"
    ),
):
    """Fit a few-shot text classifier on a labelled file and save it to --out."""
    from ..data.files import read_table
    from ..text.auto import parse_duration
    from ..text.classifier import FewShotClassifier

    if unlabeled == "-" and str(train_file) == "-":
        raise KshotError("standard input ('-') can be the training file or --unlabeled, not both")
    flags = dict(
        encoder=encoder,
        method=method,
        steps=steps,
        seed=seed,
        progress=progress,
        label_examples=label_examples,
        pseudo_per_class=pseudo_per_class,
        self_training_rounds=rounds,
        knn=knn,
        knn_weight=knn_weight,
        time_budget=time_budget,
        device=device,
    )
    extra = parse_params(param)
    allowed = set(FewShotClassifier().get_params()) - set(flags)
    for key in extra:
        if key not in allowed:
            hint = f"use --{key.replace('_', '-')}" if key in flags else f"allowed: {', '.join(sorted(allowed))}"
            raise KshotError(f"-p {key}: not a FewShotClassifier parameter -p can set ({hint})")
    clf = FewShotClassifier(**flags, **extra)
    clf.check_params(names=FIT_FLAGS)  # before any file is read, the errors naming the flags typed
    table = read_table(train_file, text_column, label_column)
    pool = read_table(unlabeled, text_column).texts if unlabeled is not None else None
    if method == "auto" and not progress:  # with --progress, fit prints this itself once it has chosen
        typer.echo(f"auto: time budget {parse_duration(time_budget):g} s", err=True)
    clf.fit(table.texts, table.labels, unlabeled=pool)
    clf.save(out)
    extra = f" and {clf.n_pseudo_labels_} pseudo-labelled texts" if pool else ""
    if method == "auto" and not progress:
        typer.echo(f"auto chose: {clf.recipe_}", err=True)
    typer.echo(
        f"fitted {method} on {len(table.texts)} texts{extra}, {len(clf.classes_)} classes; model in {out}",
        err=str(train_file) == "-",
    )


@text_app.command("predict")
@shorthand("predict", "text predict")
def predict(
    model_dir: Path = typer.Argument(..., help="a model directory written by `kshot fit`"),
    input_file: str = typer.Argument(..., help="CSV/TSV/JSONL/JSON file of texts (- for stdin, CSV)"),
    text_column: str = typer.Option("text", help="column holding the texts"),
    output: str = typer.Option("-", "--output", "-o", help="file to write (- for stdout, CSV)"),
    reject_below: Optional[float] = typer.Option(
        None, help="predict the reject label when the best score is under this"
    ),
    device: Optional[str] = device_option(None, LOAD_DEVICE_HELP),
):
    """Write the input rows plus `prediction` and `score` columns."""
    from ..data.files import read_table, write_table

    clf = _load(model_dir, device)
    table = read_table(input_file, text_column)
    preds, scores = clf.predict_with_scores(table.texts, reject_below=reject_below)
    rows = [{**row, "prediction": p, "score": round(float(s), 6)} for row, p, s in zip(table.rows, preds, scores)]
    columns = [c for c in table.columns if c not in ("prediction", "score")] + ["prediction", "score"]
    write_table(output, rows, columns)


@text_app.command("score")
@shorthand("score", "text score")
def score(
    model_dir: Path = typer.Argument(..., help="a model directory written by `kshot fit`"),
    test_file: str = typer.Argument(..., help="CSV/TSV/JSONL/JSON file of labelled texts (- for stdin, CSV)"),
    text_column: str = typer.Option("text", help="column holding the texts"),
    label_column: str = typer.Option("label", help="column holding the true labels"),
    as_json: bool = json_option(),
    plot: Optional[Path] = plot_option(),
    reject_below: Optional[float] = reject_below_option(
        "predict the reject label under this score and report "
        "out-of-scope recall (test rows labelled with the reject label)"
    ),
    seed: int = seed_option("seed of the bootstrap resamples behind the 95% intervals"),
    device: Optional[str] = device_option(None, LOAD_DEVICE_HELP),
):
    """Accuracy and macro-F1 (95% bootstrap intervals), per-class scores and the confusion matrix."""
    import json

    from ..core.report import plot_confusion
    from ..data.files import read_table
    from ..text.scoring import score as score_texts

    check_reject_below(reject_below)
    clf = _load(model_dir, device)
    table = read_table(test_file, text_column, label_column)
    result = score_texts(clf, table.texts, table.labels, reject_below=reject_below, seed=seed)
    if plot is not None:
        plot_confusion(result, plot)
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
        return
    print_report(result, plot)


def _load(model_dir: Path, device: str | None):
    """The saved classifier on ``--device`` (checked first, so a bad one is named as the flag)."""
    from ..text.classifier import FewShotClassifier
    from ..text.encoder import check_device

    return FewShotClassifier.load(model_dir, device=None if device is None else check_device(device, "--device"))
