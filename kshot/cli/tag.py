"""`kshot tag fit | predict | eval`: few-shot sequence labelling (kshot.tagging)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from .common import app

tag_app = typer.Typer(no_args_is_help=True, help="Few-shot sequence labelling: tag entities from a few "
                      "annotated sentences (CoNLL or JSONL).")
app.add_typer(tag_app, name="tag")


@tag_app.command("fit")
def fit(
    train_file: Path = typer.Argument(..., help="tagged sentences: CoNLL (token TAB tag) or JSONL {tokens, tags}"),
    out: Path = typer.Option(..., "--out", help="model directory to write"),
    method: str = typer.Option("finetune", help="finetune (the most accurate on WNUT-17; minutes on a CPU), "
                               "proto, nnshot, structshot or episodic (seconds)"),
    encoder: str = typer.Option("all-MiniLM-L6-v2", help="sentence-transformer name or local directory"),
    shots: Optional[int] = typer.Option(None, help="draw a greedy K-shot support set from the file "
                                        "(default: fit on every sentence)"),
    seed: int = typer.Option(0, help="seed of the support set draw and of training"),
    types: Optional[List[str]] = typer.Option(None, "--types", help="entity types to learn (repeatable, or "
                                              "comma-separated); other types become O"),
    backbone: str = typer.Option("lstm", help="(episodic) lstm, gru or transformer"),
    crf: bool = typer.Option(False, help="(finetune) a CRF on top of the linear head"),
    steps: Optional[int] = typer.Option(None, help="(finetune, episodic) training steps"),
):
    """Fit a few-shot tagger on a tagged file (or a K-shot support set drawn from it); save it to --out."""
    from ..tagging.io import read_tagged
    from ..tagging.sampling import greedy_support
    from ..tagging.tagger import FewShotTagger

    type_list = [t.strip() for item in types or [] for t in item.split(",") if t.strip()] or None
    data = read_tagged(train_file)
    if shots is not None:
        idx = greedy_support(data.tags, shots, seed=seed, types=type_list)
        data = data.subset(idx)
    tagger = FewShotTagger(method=method, encoder=encoder, backbone=backbone, crf=crf, steps=steps, seed=seed)
    tagger.fit(data.sentences, data.tags, types=type_list)
    tagger.save(out)
    typer.echo(f"fitted {method} on {len(data)} sentences, types {', '.join(tagger.types_)}; model in {out}")


@tag_app.command("predict")
def predict(
    model: Path = typer.Argument(..., help="model directory written by `kshot tag fit`"),
    input_file: Path = typer.Argument(..., help="plain text (one sentence per line), CoNLL or JSONL"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="CoNLL file, or JSONL if it ends in "
                                          ".jsonl (default: CoNLL on standard output)"),
):
    """Tag the sentences of a file."""
    from ..tagging.io import read_sentences, write_tagged
    from ..tagging.tagger import FewShotTagger

    tagger = FewShotTagger.load(model)
    sentences, _ = read_sentences(input_file)
    tags = tagger.predict(sentences)
    if output is None:
        for toks, ts in zip(sentences, tags):
            typer.echo("".join(f"{a}\t{b}\n" for a, b in zip(toks, ts)))
        return
    fmt = write_tagged(output, sentences, tags)
    typer.echo(f"tagged {len(sentences)} sentences; {fmt} in {output}")


@tag_app.command("eval")
def evaluate(
    model: Path = typer.Argument(..., help="model directory written by `kshot tag fit`"),
    test_file: Path = typer.Argument(..., help="tagged sentences (CoNLL or JSONL) to score against"),
    as_json: bool = typer.Option(False, "--json", help="print the scores as JSON"),
):
    """Entity-level precision, recall and F1 (exact span and type) per type and micro-averaged."""
    from ..tagging.io import read_tagged
    from ..tagging.tagger import FewShotTagger

    tagger = FewShotTagger.load(model)
    data = read_tagged(test_file)
    scores = tagger.score(data.sentences, data.tags)
    if as_json:
        typer.echo(json.dumps(scores, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("type", "precision", "recall", "F1", "support", title=f"{test_file.name}: {len(data)} sentences")
    rows = list(scores["types"].items()) + [("micro", scores["micro"])]
    for name, r in rows:
        table.add_row(name, f"{100 * r['precision']:.2f}", f"{100 * r['recall']:.2f}", f"{100 * r['f1']:.2f}",
                      str(r["support"]))
    Console().print(table)


__all__ = ["tag_app"]
