"""`kshot tag fit|predict|score`: few-shot sequence labelling (kshot.tagging). `kshot tag eval` is the earlier
name of `score`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from .common import (
    device_option,
    group,
    json_option,
    out_option,
    param_option,
    parse_params,
    parse_shots,
    progress_option,
    seed_option,
    shots_option,
)

tag_app = group("tag", "Few-shot sequence labelling: tag entities from a few annotated sentences (CoNLL or JSONL).")


@tag_app.command("fit")
def fit(
    train_file: str = typer.Argument(
        ..., help="tagged sentences: CoNLL (token TAB tag) or JSONL {tokens, tags}; - for stdin"
    ),
    out: Path = out_option(),
    method: str = typer.Option(
        "span",
        help="span (find the spans, then type them: the most accurate on "
        "WNUT-17; a minute or two on a CPU), finetune, proto, nnshot, structshot or episodic",
    ),
    encoder: str = typer.Option("all-MiniLM-L6-v2", help="sentence-transformer name or local directory"),
    source: Optional[str] = typer.Option(
        None,
        "--source",
        help="(span, episodic) another tagged corpus whose "
        "entity types all differ from these: the method trains on it first",
    ),
    unlabeled: Optional[str] = typer.Option(
        None,
        "--unlabeled",
        help="(span) sentences of the same kind of text without tags (plain text, CoNLL or JSONL; tags "
        "ignored): self-training on the entities the tagger is sure of",
    ),
    shots: Optional[str] = shots_option(
        None, "draw a greedy K-shot support set from the file (one value; default: fit on every sentence)"
    ),
    seed: int = seed_option("seed of the support set draw and of training"),
    types: Optional[List[str]] = typer.Option(
        None, "--types", help="entity types to learn (repeatable, or comma-separated); other types become O"
    ),
    backbone: str = typer.Option("lstm", help="(episodic) lstm, gru or transformer"),
    crf: bool = typer.Option(False, help="(finetune) a CRF on top of the linear head"),
    steps: Optional[int] = typer.Option(None, help="(span, finetune, episodic) training steps"),
    device: str = device_option(),
    progress: bool = progress_option(),
    param: Optional[List[str]] = param_option(
        "any other FewShotTagger parameter KEY=VALUE, e.g. -p lr=3e-5, "
        '-p describe=0.5, -p \'descriptions={"drug": "a medicine"}\''
    ),
):
    """Fit a few-shot tagger on a tagged file (or a K-shot support set drawn from it); save it to --out."""
    from ..core.errors import KshotError
    from ..tagging.io import read_tagged
    from ..tagging.sampling import greedy_support
    from ..tagging.tagger import FewShotTagger

    type_list = [t.strip() for item in types or [] for t in item.split(",") if t.strip()] or None
    data = read_tagged(train_file)
    if shots is not None:
        idx = greedy_support(data.tags, parse_shots(shots, one=True)[0], seed=seed, types=type_list)
        data = data.subset(idx)
    extra = parse_params(param)
    unknown = sorted(set(extra) - set(FewShotTagger.param_defaults()))
    if unknown:
        raise KshotError(
            f"-p {unknown[0]}: not a FewShotTagger parameter (one of: "
            f"{', '.join(sorted(FewShotTagger.param_defaults()))})"
        )
    src = None
    if source is not None:
        src_data = read_tagged(source)
        src = (src_data.sentences, src_data.tags)
    tagger = FewShotTagger(
        **{
            "method": method,
            "encoder": encoder,
            "backbone": backbone,
            "crf": crf,
            "steps": steps,
            "seed": seed,
            "device": device,
            "progress": progress,
            **extra,
        }
    )
    extra_sentences = None
    if unlabeled is not None:  # plain text, CoNLL or JSONL; an empty file is refused by the reader
        from ..tagging.io import read_sentences

        extra_sentences, _ = read_sentences(unlabeled)
    tagger.fit(data.sentences, data.tags, types=type_list, source=src, unlabeled=extra_sentences)
    tagger.save(out)
    typer.echo(f"fitted {method} on {len(data)} sentences, types {', '.join(tagger.types_)}; model in {out}")


@tag_app.command("predict")
def predict(
    model: Path = typer.Argument(..., help="model directory written by `kshot tag fit`"),
    input_file: str = typer.Argument(..., help="plain text (one sentence per line), CoNLL or JSONL; - for stdin"),
    output: str = typer.Option(
        "-", "--output", "-o", help="CoNLL file, or JSONL if it ends in .jsonl (- for standard output, CoNLL)"
    ),
    device: Optional[str] = device_option(None, "torch device (default: the one it was fitted on)"),
):
    """Tag the sentences of a file."""
    from ..tagging.io import read_sentences, write_tagged
    from ..tagging.tagger import FewShotTagger

    tagger = FewShotTagger.load(model, device=device)
    sentences, _ = read_sentences(input_file)
    tags = tagger.predict(sentences)
    fmt = write_tagged(output, sentences, tags)
    if output != "-":
        typer.echo(f"tagged {len(sentences)} sentences; {fmt} in {output}")


@tag_app.command("score")
@tag_app.command("eval", hidden=True)
def score(
    model: Path = typer.Argument(..., help="model directory written by `kshot tag fit`"),
    test_file: str = typer.Argument(..., help="tagged sentences (CoNLL or JSONL) to score against; - for stdin"),
    as_json: bool = json_option(),
    device: Optional[str] = device_option(None, "torch device (default: the one it was fitted on)"),
):
    """Entity-level precision, recall and F1 (exact span and type) per type and micro-averaged."""
    from ..tagging.io import read_tagged
    from ..tagging.tagger import FewShotTagger

    tagger = FewShotTagger.load(model, device=device)
    data = read_tagged(test_file)
    scores = tagger.score(data.sentences, data.tags)
    if as_json:
        typer.echo(json.dumps(scores, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("type", "precision", "recall", "F1", "support", title=f"{data.name}: {len(data)} sentences")
    rows = list(scores["types"].items()) + [("micro", scores["micro"])]
    for name, r in rows:
        table.add_row(
            name, f"{100 * r['precision']:.2f}", f"{100 * r['recall']:.2f}", f"{100 * r['f1']:.2f}", str(r["support"])
        )
    Console().print(table)


__all__ = ["tag_app"]
