"""`kshot image train|eval` (shorthands `kshot train`, `kshot eval`): episodic meta-training of the metric and
gradient-based methods, and their accuracy on fixed test episodes."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import List, Optional

import typer

from ..core.errors import KshotError
from .common import (data_root_option, device_option, group, json_option, param_option, parse_params,
                     parse_shots, progress_option, read_config, seed_option, shorthand, shots_option)

image_app = group("image", "Few-shot image classification: meta-train a method on episodes (train) and score it "
                           "on fixed test episodes (eval).")


@image_app.command("train")
@shorthand("train", "image train")
def train(
    out: Path = typer.Option(..., "--out", help="run directory for config, checkpoints and logs"),
    config: Optional[Path] = typer.Option(None, "--config", help="JSON or TOML file of TrainConfig keys; flags override it"),
    method: Optional[str] = typer.Option(None, help="method name (protonet, ...)"),
    dataset: Optional[str] = typer.Option(None, help="dataset name (see `kshot datasets`)"),
    backbone: Optional[str] = typer.Option(None, help="conv4 or mlp"),
    backbone_param: Optional[List[str]] = typer.Option(
        None, "--backbone-param", "-b", help="backbone parameter KEY=VALUE, e.g. downsample=stride (repeatable)"),
    way: Optional[int] = typer.Option(None, help="classes per training episode"),
    shots: Optional[str] = shots_option(None, "support examples per class (one value)"),
    query: Optional[int] = typer.Option(None, help="query examples per class"),
    episodes: Optional[int] = typer.Option(None, help="training episodes (tasks)"),
    meta_batch: Optional[int] = typer.Option(None, help="tasks per optimisation step"),
    inner_steps: Optional[int] = typer.Option(None, help="gradient-based methods: inner-loop steps in training"),
    inner_lr: Optional[float] = typer.Option(None, help="gradient-based methods: inner-loop learning rate"),
    test_inner_steps: Optional[int] = typer.Option(None, help="gradient-based methods: inner-loop steps at test time"),
    lr: Optional[float] = typer.Option(None, help="outer learning rate (Adam's, or SGD's step size)"),
    optimizer: Optional[str] = typer.Option(None, help="adam (default) or sgd (plain; Reptile's outer step: set --lr, e.g. 1.0)"),
    lr_schedule: Optional[str] = typer.Option(None, help="step (halve every --lr-step episodes, default) or linear (towards 0 at --episodes; --lr-step unused)"),
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
    augment: Optional[List[str]] = typer.Option(None, "--augment", help="data augmentation KEY=VALUE: shift=PIXELS, rotate=DEGREES, classes=true (repeatable)"),
    tensorboard: bool = typer.Option(False, help="log to RUN_DIR/tensorboard"),
    resume: bool = typer.Option(False, help="continue the run in --out from its last checkpoint"),
    progress: bool = progress_option(),
    nproc: Optional[int] = typer.Option(None, help="train with N processes on this machine (starts torchrun; gloo on CPU, one GPU each with nccl); each takes its share of --meta-batch. Under your own torchrun leave it out"),
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
    flags = dict(method=method, dataset=dataset, backbone=backbone, way=way, shot=shot, query=query,
                 episodes=episodes, meta_batch=meta_batch, lr=lr, optimizer=optimizer,
                 lr_schedule=lr_schedule, lr_step=lr_step, val_way=val_way,
                 val_shot=val_shot, val_every=val_every, val_episodes=val_episodes, patience=patience,
                 seed=seed, data_root=data_root, device=device, batch_size=batch_size)
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
        raise KshotError(f"--lr-step {lr_step} has no effect with --lr-schedule linear (the learning rate falls "
                         "to 0 at --episodes); give one of the two")
    if nproc is not None:
        from ..core.distributed import check_nproc

        if check_nproc(nproc, cfg.device) > 1:
            _launch_training(cfg, out, resume, progress, nproc, check_run(cfg, out, resume, nproc))
            return
    summary = meta_train(cfg, out, resume=resume, progress=progress)
    if summary["rank"] != 0 or launched():  # under torchrun rank 0 reports; under --nproc, the launcher
        return
    typer.echo(f"best validation accuracy {100 * summary['best_val_accuracy']:.2f}% after "
               f"{summary['episodes']} episodes ({summary['train_seconds']:.0f} s training); run in {out}")


def _launch_training(cfg, out: Path, resume: bool, progress: bool, nproc: int, notice: str | None) -> None:
    """``kshot train`` in ``nproc`` processes: the checked config goes to them as a file."""
    from ..core.distributed import launch

    if notice:
        typer.echo(notice, err=True)
    with tempfile.TemporaryDirectory(prefix="kshot-launch-") as tmp:
        path = Path(tmp) / "config.json"
        path.write_text(json.dumps(cfg.to_dict()))
        launch(nproc, ["train", "--out", str(out), "--config", str(path), *(["--resume"] if resume else []),
                       *([] if progress else ["--no-progress"])])
    last = json.loads((out / "last.json").read_text())
    typer.echo(f"best validation accuracy {100 * last['best_val']:.2f}% after {last['episodes_done']} episodes "
               f"({last['train_seconds']:.0f} s training, {nproc} processes); run in {out}")


@image_app.command("eval")
@shorthand("eval", "image eval")
def eval_(
    run_dir: Path = typer.Argument(..., help="a run directory written by `kshot image train`"),
    way: int = typer.Option(5, help="classes per test episode"),
    shots: str = shots_option("1", "support examples per class; several values give one score each"),
    query: int = typer.Option(15, help="queries per class"),
    episodes: int = typer.Option(1000, help="number of fixed test episodes"),
    seed: int = seed_option("seed of the fixed test episodes"),
    split: str = typer.Option("test", help="data split to evaluate on"),
    checkpoint: str = typer.Option("best", help="best or last"),
    param: Optional[List[str]] = param_option("test-time method parameter KEY=VALUE, e.g. test_time=finetune"),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="data root (default: the run's, else $KSHOT_DATA)"),
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
    if not run_dir.is_dir():
        raise KshotError(f"run directory {run_dir} does not exist")
    method, meta = load_method(run_dir, checkpoint, params=parse_params(param))
    cfg = meta.get("config", {})
    data = load_dataset(meta["dataset"], split, root=data_root or cfg.get("data_root"),
                        **cfg.get("dataset_params", {}))
    results = []
    for shot in shot_list:
        score = evaluate(method, data, way, shot, query, episodes, seed=seed, per_class=per_class,
                         device=device or cfg.get("device", "cpu"), progress=progress and not as_json)
        results.append({**score.to_dict(), "method": meta["method"], "dataset": meta["dataset"], "split": split,
                        "run_dir": str(run_dir)})
        if not as_json:
            typer.echo(f"{meta['method']} on {meta['dataset']}/{split}: {score}")
            if per_class and score.per_class:
                worst = sorted(score.per_class.items(), key=lambda kv: kv[1]["f1"])[:10]
                for name, m in worst:
                    typer.echo(f"  {name:40s} P {m['precision']:.3f}  R {m['recall']:.3f}  F1 {m['f1']:.3f}")
    if as_json:
        typer.echo(json.dumps(results[0] if len(results) == 1 else {"results": results}))


def _set_head_way(values: dict) -> None:
    """Methods with a ``way``-output head (MAML family) get ``way`` from --way unless -p way=... says otherwise."""
    import inspect

    from ..images.methods import METHODS

    cls = METHODS.get(values.get("method", "protonet"))
    if cls is not None and "way" in inspect.signature(cls.__init__).parameters and "way" in values:
        values["method_params"] = {"way": values["way"], **values.get("method_params", {})}
