"""`kshot image fit|predict|score` (few-shot classification of the user's own photos on a pretrained network)
and `kshot image train|eval` (shorthands `kshot train`, `kshot eval`): episodic meta-training of the metric and
gradient-based methods, and their accuracy on fixed test episodes (of a trained run, or of the pretrained
network's features with `--pretrained`)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

from ..core.errors import KshotError
from .common import (
    check_reject_below,
    data_root_option,
    device_option,
    group,
    json_option,
    out_option,
    param_option,
    parse_params,
    parse_shots,
    plot_option,
    print_report,
    progress_option,
    read_config,
    reject_below_option,
    seed_option,
    shorthand,
    shots_option,
)

image_app = group(
    "image",
    "Few-shot image classification: fit on a few photos per class on a pretrained network, "
    "predict and score (fit, predict, score); meta-train a method on episodes (train) and "
    "score it on fixed test episodes (eval).",
)

# FewShotImageClassifier parameters set by `kshot image fit` flags, for its errors
FIT_FLAGS = {
    "time_budget": "--time-budget",
    "steps": "--steps",
    "device": "--device",
    "backbone": "--backbone",
    "method": "--method",
    "weights": "--weights",
    "tune_blocks": "--tune-blocks",
}
LOAD_DEVICE_HELP = (
    "torch device: cpu, cuda, cuda:1, mps (default: the one the model was fitted on when it is here, else cpu)"
)


@image_app.command("fit")
def fit(
    source: Path = typer.Argument(
        ...,
        help="a folder with one sub-folder of photos per class (photos/<label>/*.jpg), "
        "or a CSV/TSV/JSONL/JSON file with path and label columns",
    ),
    out: Path = out_option(),
    method: str = typer.Option(
        "auto",
        help="auto (the default: fine-tune when the photos and --time-budget allow, "
        "else frozen features), prototype, logistic or finetune",
    ),
    backbone: str = typer.Option("efficientnet-lite0", help="pretrained network: efficientnet-lite0, -lite1, -lite2"),
    weights: str = typer.Option(
        "imagenet",
        help="imagenet (the packaged weights) or your own weights file "
        "(.safetensors or a PyTorch state dict) for the same network",
    ),
    time_budget: float = typer.Option(120.0, help="(auto) seconds the fit may take"),
    steps: int = typer.Option(60, help="(finetune, auto) fine-tuning steps at most"),
    tune_blocks: int = typer.Option(2, help="(finetune, auto) last blocks of the network to fine-tune"),
    seed: int = seed_option(),
    device: str = device_option("cpu"),
    progress: bool = progress_option(),
    param: Optional[List[str]] = param_option(
        "any other FewShotImageClassifier parameter KEY=VALUE, e.g. -p C=3 (repeatable)"
    ),
):
    """Fit a few-shot image classifier on labelled photos and save it to --out."""
    from ..images.classifier import FewShotImageClassifier
    from ..images.photos import read_labeled

    flags = dict(method=method, backbone=backbone, weights=weights, seed=seed, device=device, progress=progress)
    defaults = FewShotImageClassifier.param_defaults()
    for name, value in dict(time_budget=time_budget, steps=steps, tune_blocks=tune_blocks).items():
        if value != defaults[name]:  # a flag set for a method it does not apply to is an error (check_params)
            flags[name] = value
    extra = parse_params(param)
    allowed = set(defaults) - set(flags) - {"time_budget", "steps", "tune_blocks"}
    for key in extra:
        if key not in allowed:
            hint = f"use --{key.replace('_', '-')}" if key in defaults else f"allowed: {', '.join(sorted(allowed))}"
            raise KshotError(f"-p {key}: not a FewShotImageClassifier parameter -p can set ({hint})")
    clf = FewShotImageClassifier(**flags, **extra)
    clf.check_params(names=FIT_FLAGS)  # before any photo is read
    paths, labels = read_labeled(source)
    clf.fit(paths, labels)
    clf.save(out)
    typer.echo(
        f"fitted {clf.recipe_} on {len(paths)} photos, {len(clf.classes_)} classes, "
        f"in {clf.fit_seconds_:.1f} s; "
        f"model in {out}",
        err=True,
    )


def _load(model_dir: Path, device: str | None):
    from ..core.device import check_device
    from ..images.classifier import FewShotImageClassifier

    return FewShotImageClassifier.load(model_dir, device=None if device is None else check_device(device, "--device"))


@image_app.command("predict")
def predict(
    model_dir: Path = typer.Argument(..., help="a model directory written by `kshot image fit`"),
    inputs: List[str] = typer.Argument(..., help="photos: files, folders (every image under them) or glob patterns"),
    output: str = typer.Option(
        "-", "--output", "-o", help="file to write: .csv, .tsv, .jsonl or .json (- for stdout, CSV)"
    ),
    top_k: int = typer.Option(3, "--top-k", help="also list the K most likely labels with their probabilities"),
    reject_below: Optional[float] = typer.Option(
        None, help="predict the model's reject label (default 'unknown') when the best probability is under this"
    ),
    device: Optional[str] = device_option(None, LOAD_DEVICE_HELP),
    progress: bool = progress_option(),
):
    """Write one row per photo: path, prediction, score (its probability), the top-k labels, and an error column
    for photos that cannot be read (reported and counted, never a crash)."""
    from ..data.files import file_format, write_table
    from ..images.photos import expand

    if top_k < 1:
        raise KshotError(f"--top-k must be an integer >= 1, got {top_k}")
    check_reject_below(reject_below)
    if output != "-":
        file_format(output)  # an unknown output format fails before any work
    paths, skipped = expand(inputs)
    if not paths:
        raise KshotError(f"no image files in {', '.join(inputs)}")
    clf = _load(model_dir, device)
    clf.progress = progress
    X, failed = clf.embed(paths, errors="collect")
    proba = clf.head_.proba(X).numpy()
    preds, scores = clf.labels_for(proba, reject_below)
    errors = dict(failed)
    rows = []
    for i, path in enumerate(paths):
        if i in errors:
            rows.append({"path": str(path), "prediction": "", "score": "", "top_k": "", "error": errors[i]})
            continue
        order = np.argsort(-proba[i])[:top_k]
        rows.append(
            {
                "path": str(path),
                "prediction": preds[i],
                "score": round(float(scores[i]), 6),
                "top_k": ";".join(f"{clf.classes_[j]}:{proba[i, j]:.4f}" for j in order),
                "error": "",
            }
        )
    write_table(output, rows, ["path", "prediction", "score", "top_k", "error"])
    if failed:
        typer.echo(
            f"{len(failed)} of {len(paths)} files could not be read (their rows hold the reason in the error column):",
            err=True,
        )
        for i, message in failed[:20]:
            typer.echo(f"  {message}", err=True)
        if len(failed) > 20:
            typer.echo(f"  ... and {len(failed) - 20} more", err=True)
    if skipped:
        typer.echo(f"{skipped} files that are not images were skipped in the folders given", err=True)
    if output != "-":
        typer.echo(f"predicted {len(paths) - len(failed)} photos into {output}", err=True)


@image_app.command("score")
def score(
    model_dir: Path = typer.Argument(..., help="a model directory written by `kshot image fit`"),
    source: Path = typer.Argument(..., help="labelled test photos: a folder of class sub-folders or a path,label file"),
    as_json: bool = json_option(),
    plot: Optional[Path] = plot_option(),
    reject_below: Optional[float] = reject_below_option(
        "predict the reject label under this probability and report out-of-scope recall (test photos labelled with it)"
    ),
    seed: int = seed_option("seed of the bootstrap resamples behind the 95% intervals"),
    device: Optional[str] = device_option(None, LOAD_DEVICE_HELP),
    progress: bool = progress_option(),
):
    """Accuracy and macro-F1 (95% bootstrap intervals), per-class scores and the confusion matrix."""
    import json

    from ..core.report import classification_report, plot_confusion
    from ..images.photos import read_labeled

    check_reject_below(reject_below)
    paths, labels = read_labeled(source)
    clf = _load(model_dir, device)
    clf.progress = progress and not as_json
    pred = list(clf.predict(paths, reject_below=reject_below))
    result = classification_report(
        labels,
        pred,
        list(clf.classes_),
        reject_below=reject_below,
        reject_label=clf.reject_label,
        seed=seed,
        what="images",
    )
    if plot is not None:
        plot_confusion(result, plot)
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
        return
    print_report(result, plot)


@image_app.command("train")
@shorthand("train", "image train")
def train(
    out: Path = typer.Option(..., "--out", help="run directory for config, checkpoints and logs"),
    config: Optional[Path] = typer.Option(
        None, "--config", help="JSON or TOML file of TrainConfig keys; flags override it"
    ),
    method: Optional[str] = typer.Option(None, help="method name (protonet, ...)"),
    dataset: Optional[str] = typer.Option(None, help="dataset name (see `kshot datasets`)"),
    backbone: Optional[str] = typer.Option(None, help="conv4 or mlp"),
    backbone_param: Optional[List[str]] = typer.Option(
        None, "--backbone-param", "-b", help="backbone parameter KEY=VALUE, e.g. downsample=stride (repeatable)"
    ),
    way: Optional[int] = typer.Option(None, help="classes per training episode"),
    shots: Optional[str] = shots_option(None, "support examples per class (one value)"),
    query: Optional[int] = typer.Option(None, help="query examples per class"),
    episodes: Optional[int] = typer.Option(None, help="training episodes (tasks)"),
    meta_batch: Optional[int] = typer.Option(None, help="tasks per optimisation step"),
    inner_steps: Optional[int] = typer.Option(None, help="gradient-based methods: inner-loop steps in training"),
    inner_lr: Optional[float] = typer.Option(None, help="gradient-based methods: inner-loop learning rate"),
    test_inner_steps: Optional[int] = typer.Option(None, help="gradient-based methods: inner-loop steps at test time"),
    lr: Optional[float] = typer.Option(None, help="outer learning rate (Adam's, or SGD's step size)"),
    optimizer: Optional[str] = typer.Option(
        None, help="adam (default) or sgd (plain; Reptile's outer step: set --lr, e.g. 1.0)"
    ),
    lr_schedule: Optional[str] = typer.Option(
        None,
        help="step (halve every --lr-step episodes, default) or linear (towards 0 at --episodes; --lr-step unused)",
    ),
    lr_step: Optional[int] = typer.Option(None, help="episodes between learning-rate halvings"),
    val_way: Optional[int] = typer.Option(None, help="classes per validation episode"),
    val_shot: Optional[int] = typer.Option(None, help="support per class in validation (default: --shot)"),
    val_every: Optional[int] = typer.Option(None, help="episodes between validations"),
    val_episodes: Optional[int] = typer.Option(None, help="fixed validation episodes"),
    patience: Optional[int] = typer.Option(None, help="early stopping: validations without improvement (0: off)"),
    seed: Optional[int] = typer.Option(None, "--seed", help="random seed"),
    data_root: Optional[str] = data_root_option(),
    device: Optional[str] = device_option(None, "torch device (cpu, cuda)"),
    param: Optional[List[str]] = param_option(),
    batch_size: Optional[int] = typer.Option(None, help="pre-training mini-batch (baseline, baseline++)"),
    augment: Optional[List[str]] = typer.Option(
        None, "--augment", help="data augmentation KEY=VALUE: shift=PIXELS, rotate=DEGREES, classes=true (repeatable)"
    ),
    tensorboard: bool = typer.Option(False, help="log to RUN_DIR/tensorboard"),
    resume: bool = typer.Option(False, help="continue the run in --out from its last checkpoint"),
    progress: bool = progress_option(),
    nproc: Optional[int] = typer.Option(
        None,
        help="train with N processes on this machine (starts torchrun; gloo on CPU, one GPU each with nccl); each takes its share of --meta-batch. Under your own torchrun leave it out",
    ),
):
    """Meta-train a method on a dataset and write checkpoints to --out."""
    from ..core.distributed import launched
    from ..images.training import TrainConfig, check_run, meta_train

    values = {}
    if resume and (out / "config.json").is_file():
        values = json.loads((out / "config.json").read_text())
        values.pop("kshot_version", None)
    if config is not None:
        values.update(read_config(config))
    shot = parse_shots(shots, one=True)[0] if shots is not None else None
    flags = dict(
        method=method,
        dataset=dataset,
        backbone=backbone,
        way=way,
        shot=shot,
        query=query,
        episodes=episodes,
        meta_batch=meta_batch,
        lr=lr,
        optimizer=optimizer,
        lr_schedule=lr_schedule,
        lr_step=lr_step,
        val_way=val_way,
        val_shot=val_shot,
        val_every=val_every,
        val_episodes=val_episodes,
        patience=patience,
        seed=seed,
        data_root=data_root,
        device=device,
        batch_size=batch_size,
    )
    values.update({k: v for k, v in flags.items() if v is not None})
    if tensorboard:
        values["tensorboard"] = True
    if augment:
        values["augment"] = {**values.get("augment", {}), **parse_params(augment)}
    if param:
        values["method_params"] = {**values.get("method_params", {}), **parse_params(param)}
    if backbone_param:
        values["backbone_params"] = {**values.get("backbone_params", {}), **parse_params(backbone_param)}
    inner = dict(inner_steps=inner_steps, inner_lr=inner_lr, test_inner_steps=test_inner_steps)
    values["method_params"] = {**values.get("method_params", {}), **{k: v for k, v in inner.items() if v is not None}}
    _set_head_way(values)
    cfg = TrainConfig.from_dict(values)
    if lr_step is not None and cfg.lr_schedule == "linear":
        raise KshotError(
            f"--lr-step {lr_step} has no effect with --lr-schedule linear (the learning rate falls "
            "to 0 at --episodes); give one of the two"
        )
    if nproc is not None:
        from ..core.distributed import check_nproc

        if check_nproc(nproc, cfg.device) > 1:
            _launch_training(cfg, out, resume, progress, nproc, check_run(cfg, out, resume, nproc))
            return
    summary = meta_train(cfg, out, resume=resume, progress=progress)
    if summary["rank"] != 0 or launched():  # under torchrun rank 0 reports; under --nproc, the launcher
        return
    typer.echo(
        f"best validation accuracy {100 * summary['best_val_accuracy']:.2f}% after "
        f"{summary['episodes']} episodes ({summary['train_seconds']:.0f} s training); run in {out}"
    )


def _launch_training(cfg, out: Path, resume: bool, progress: bool, nproc: int, notice: str | None) -> None:
    """``kshot train`` in ``nproc`` processes: the checked config goes to them as a file."""
    from ..core.distributed import launch

    if notice:
        typer.echo(notice, err=True)
    with tempfile.TemporaryDirectory(prefix="kshot-launch-") as tmp:
        path = Path(tmp) / "config.json"
        path.write_text(json.dumps(cfg.to_dict()))
        launch(
            nproc,
            [
                "train",
                "--out",
                str(out),
                "--config",
                str(path),
                *(["--resume"] if resume else []),
                *([] if progress else ["--no-progress"]),
            ],
        )
    last = json.loads((out / "last.json").read_text())
    typer.echo(
        f"best validation accuracy {100 * last['best_val']:.2f}% after {last['episodes_done']} episodes "
        f"({last['train_seconds']:.0f} s training, {nproc} processes); run in {out}"
    )


@image_app.command("eval")
@shorthand("eval", "image eval")
def eval_(
    run_dir: Optional[Path] = typer.Argument(
        None, help="a run directory written by `kshot image train` (or none, with --pretrained)"
    ),
    pretrained: Optional[str] = typer.Option(
        None,
        "--pretrained",
        help="score the ImageNet network's features "
        "instead of a run: efficientnet-lite0, -lite1 or -lite2 (with --dataset)",
    ),
    dataset: Optional[str] = typer.Option(None, help="(--pretrained) data set, e.g. fashion-mnist, omniglot"),
    method: str = typer.Option(
        "prototype,logistic",
        help="(--pretrained) methods, comma-separated: prototype, "
        "logistic, sklearn (LogisticRegression defaults), finetune, auto",
    ),
    image_size: Optional[int] = typer.Option(None, help="(--pretrained) network input size (default: the network's)"),
    invert: bool = typer.Option(False, help="(--pretrained) invert white-on-black images (Omniglot, Fashion-MNIST)"),
    steps: int = typer.Option(60, help="(--pretrained, finetune) fine-tuning steps per episode"),
    tune_blocks: int = typer.Option(2, help="(--pretrained, finetune) last blocks fine-tuned"),
    way: int = typer.Option(5, help="classes per test episode"),
    shots: str = shots_option("1", "support examples per class; several values give one score each"),
    query: int = typer.Option(15, help="queries per class"),
    episodes: int = typer.Option(1000, help="number of fixed test episodes"),
    seed: int = seed_option("seed of the fixed test episodes"),
    split: str = typer.Option("test", help="data split to evaluate on"),
    checkpoint: str = typer.Option("best", help="best or last"),
    param: Optional[List[str]] = param_option("test-time method parameter KEY=VALUE, e.g. test_time=finetune"),
    data_root: Optional[str] = typer.Option(
        None, "--data-root", help="data root (default: the run's, else $KSHOT_DATA)"
    ),
    device: Optional[str] = device_option(None, "torch device (default: the run's)"),
    per_class: bool = typer.Option(False, help="add per-class precision / recall / F1"),
    as_json: bool = json_option(),
    progress: bool = progress_option(),
):
    """Evaluate a trained run on fixed test episodes: accuracy with its 95% confidence interval."""
    from ..data import load_dataset
    from ..images.evaluation import evaluate
    from ..images.training import load_method

    shot_list = parse_shots(shots)
    if pretrained is not None or run_dir is None:
        _eval_pretrained(
            pretrained,
            run_dir,
            dataset,
            split,
            method,
            way,
            shot_list,
            query,
            episodes,
            seed,
            image_size,
            invert,
            steps,
            tune_blocks,
            data_root,
            device,
            as_json,
            progress,
        )
        return
    if dataset is not None:
        raise KshotError("--dataset goes with --pretrained; a run is scored on the data set it was trained on")
    if not run_dir.is_dir():
        raise KshotError(f"run directory {run_dir} does not exist")
    method, meta = load_method(run_dir, checkpoint, params=parse_params(param))
    cfg = meta.get("config", {})
    data = load_dataset(meta["dataset"], split, root=data_root or cfg.get("data_root"), **cfg.get("dataset_params", {}))
    results = []
    for shot in shot_list:
        score = evaluate(
            method,
            data,
            way,
            shot,
            query,
            episodes,
            seed=seed,
            per_class=per_class,
            device=device or cfg.get("device", "cpu"),
            progress=progress and not as_json,
        )
        results.append(
            {
                **score.to_dict(),
                "method": meta["method"],
                "dataset": meta["dataset"],
                "split": split,
                "run_dir": str(run_dir),
            }
        )
        if not as_json:
            typer.echo(f"{meta['method']} on {meta['dataset']}/{split}: {score}")
            if per_class and score.per_class:
                worst = sorted(score.per_class.items(), key=lambda kv: kv[1]["f1"])[:10]
                for name, m in worst:
                    typer.echo(f"  {name:40s} P {m['precision']:.3f}  R {m['recall']:.3f}  F1 {m['f1']:.3f}")
    if as_json:
        typer.echo(json.dumps(results[0] if len(results) == 1 else {"results": results}))


def _eval_pretrained(
    pretrained,
    run_dir,
    dataset,
    split,
    method,
    way,
    shot_list,
    query,
    episodes,
    seed,
    image_size,
    invert,
    steps,
    tune_blocks,
    data_root,
    device,
    as_json,
    progress,
) -> None:
    from ..data import load_dataset
    from ..images.features import ImageEncoder
    from ..images.pretrained import evaluate_pretrained

    if pretrained is None:
        raise KshotError("give a run directory, or --pretrained NETWORK with --dataset NAME")
    if run_dir is not None:
        raise KshotError(f"--pretrained scores the ImageNet network, not a run: drop {run_dir} or --pretrained")
    if dataset is None:
        raise KshotError("--pretrained needs --dataset (e.g. fashion-mnist, omniglot)")
    methods = [m.strip() for m in method.split(",") if m.strip()]
    data = load_dataset(dataset, split, root=data_root)
    encoder = ImageEncoder(pretrained, device=device or "cpu", image_size=image_size)
    features: dict = {}
    results = []
    for shot in shot_list:
        scores, chosen = evaluate_pretrained(
            data,
            pretrained,
            methods,
            way,
            shot,
            query,
            episodes,
            seed,
            invert=invert,
            steps=steps,
            tune_blocks=tune_blocks,
            progress=progress and not as_json,
            encoder=encoder,
            features=features,
        )
        for name, score in scores.items():
            results.append(
                {
                    **score.to_dict(),
                    "method": name,
                    "backbone": pretrained,
                    "dataset": dataset,
                    "split": split,
                    "image_size": encoder.image_size,
                    "invert": invert,
                    **({"auto_chose": chosen} if name == "auto" else {}),
                }
            )
            if not as_json:
                extra = f" (chose {chosen})" if name == "auto" else ""
                typer.echo(f"{pretrained} {name} on {dataset}/{split}: {score}{extra}")
    if as_json:
        typer.echo(json.dumps(results[0] if len(results) == 1 else {"results": results}))


def _set_head_way(values: dict) -> None:
    """Methods with a ``way``-output head (MAML family) get ``way`` from --way unless -p way=... says otherwise."""
    import inspect

    from ..images.methods import METHODS

    cls = METHODS.get(values.get("method", "protonet"))
    if cls is not None and "way" in inspect.signature(cls.__init__).parameters and "way" in values:
        values["method_params"] = {"way": values["way"], **values.get("method_params", {})}
