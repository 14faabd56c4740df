import json
import math

import numpy as np
import pytest
import torch
from toy import toy_data

import kshot
from kshot.core.checkpoint import load_checkpoint, save_checkpoint
from kshot.core.errors import KshotError
from kshot.core.stats import ci95
from kshot.images.evaluation import Score, evaluate
from kshot.images.training import TrainConfig, TrainingError, load_method, meta_train


def tiny_config(**kw):
    base = dict(
        method="protonet",
        dataset="toy",
        backbone="mlp",
        way=5,
        shot=2,
        query=3,
        episodes=60,
        val_way=3,
        val_query=4,
        val_every=20,
        val_episodes=20,
        lr=3e-3,
        backbone_params={"hidden": [32], "out_dim": 16},
    )
    return TrainConfig(**{**base, **kw})


def test_ci_formula():
    values = np.array([1.0, 0.8, 0.9, 0.7, 1.0, 0.6])
    assert ci95(values) == pytest.approx(1.96 * values.std(ddof=1) / math.sqrt(6))
    s = Score.from_values(values, way=5, shot=1, query=15)
    assert s.accuracy == pytest.approx(values.mean()) and s.n == 6
    assert s.to_dict()["ci95"] == pytest.approx(ci95(values))
    assert "± " in str(s)


def test_checkpoint_round_trip_with_optimizer(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(3))
    net(torch.randn(2, 1, 5, 5))
    net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(4, 1, 5, 5)).sum().backward()
        opt.step()
    save_checkpoint(tmp_path / "ck", net.state_dict(), {"hello": [1, 2]}, opt)
    state, meta, optim = load_checkpoint(tmp_path / "ck")
    assert meta["hello"] == [1, 2]
    for k, v in net.state_dict().items():
        assert torch.equal(state[k], v)
    opt2 = torch.optim.Adam(net.parameters(), 1e-2)
    opt2.load_state_dict(optim)
    for a, b in zip(opt.state.values(), opt2.state.values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and float(a["step"]) == float(b["step"])
    # a tampered tensors file is detected and named
    data = (tmp_path / "ck.safetensors").read_bytes()
    (tmp_path / "ck.safetensors").write_bytes(data[:-8] + b"\0" * 8)
    with pytest.raises(KshotError, match="checksum mismatch for .*ck.safetensors"):
        load_checkpoint(tmp_path / "ck")
    with pytest.raises(KshotError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nothing")


def test_checkpoint_killed_between_its_two_writes_loads_as_the_new_one(tmp_path):
    # the tensors file is written first; a kill before the JSON leaves the previous save's JSON beside it
    old = {"w": torch.zeros(3), "b": torch.ones(2, dtype=torch.bfloat16)}
    new = {"w": torch.arange(3.0), "b": torch.full((2,), 2.0, dtype=torch.bfloat16)}
    save_checkpoint(tmp_path / "last", old, {"episodes_done": 10})
    save_checkpoint(tmp_path / "next", new, {"episodes_done": 20})
    (tmp_path / "next.safetensors").replace(tmp_path / "last.safetensors")  # the kill: JSON not rewritten
    state, meta, _ = load_checkpoint(tmp_path / "last")
    assert meta["episodes_done"] == 20 and torch.equal(state["w"], new["w"]) and torch.equal(state["b"], new["b"])
    assert json.loads((tmp_path / "last.json").read_text())["episodes_done"] == 10


def test_meta_train_learns_saves_and_reloads(tmp_path):
    train, val, test = (toy_data(split=s) for s in ("train", "val", "test"))
    summary = meta_train(tiny_config(), tmp_path / "run", progress=False, train_data=train, val_data=val)
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {
        "config.json",
        "best.json",
        "best.safetensors",
        "last.json",
        "last.safetensors",
    }
    assert [h["episodes"] for h in summary["history"]] == [20, 40, 60]
    assert summary["best_val_accuracy"] > 0.8  # 3-way, chance is 0.33
    method, meta = load_method(tmp_path / "run")
    assert meta["method"] == "protonet" and meta["kshot_version"] == kshot.__version__
    score = evaluate(method, test, way=3, shot=2, query=4, episodes=50)
    assert score.accuracy > 0.8 and score.n == 50 and len(score.values) == 50
    # evaluation is a pure function of (data, way, shot, query, seed)
    assert evaluate(method, test, 3, 2, 4, episodes=50).accuracy == score.accuracy
    report = evaluate(method, test, 3, 2, 4, episodes=20, per_class=True).per_class
    assert set(report) <= set(test.class_names) and all(0 <= r["f1"] <= 1 for r in report.values())


def test_resume_continues_exactly(tmp_path):
    train, val = toy_data(split="train"), toy_data(split="val")
    meta_train(tiny_config(), tmp_path / "a", progress=False, train_data=train, val_data=val)
    meta_train(tiny_config(episodes=40), tmp_path / "b", progress=False, train_data=train, val_data=val)
    summary = meta_train(tiny_config(), tmp_path / "b", resume=True, progress=False, train_data=train, val_data=val)
    assert [h["episodes"] for h in summary["history"]] == [20, 40, 60]
    a, _, _ = load_checkpoint(tmp_path / "a" / "last")
    b, _, _ = load_checkpoint(tmp_path / "b" / "last")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    with pytest.raises(KshotError, match="already holds a run"):
        meta_train(tiny_config(), tmp_path / "a", progress=False, train_data=train, val_data=val)
    with pytest.raises(KshotError, match="cannot resume"):
        meta_train(tiny_config(), tmp_path / "c", resume=True, progress=False, train_data=train, val_data=val)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    train, val = toy_data(split="train"), toy_data(split="val")
    bad = train.items.clone()
    bad[train.labels == 7] = float("nan")
    train.items = bad
    with pytest.raises(TrainingError, match=r"loss became nan at episode \d+"):
        meta_train(
            tiny_config(episodes=200, val_every=1), tmp_path / "run", progress=False, train_data=train, val_data=val
        )
    state, meta, _ = load_checkpoint(tmp_path / "run" / "last")
    assert meta["episodes_done"] >= 1 and all(torch.isfinite(v).all() for v in state.values())


def test_early_stopping_and_config_validation(tmp_path):
    train, val = toy_data(split="train"), toy_data(split="val")
    summary = meta_train(
        tiny_config(episodes=400, val_every=5, patience=2, lr=1e-9),
        tmp_path / "r",
        progress=False,
        train_data=train,
        val_data=val,
    )
    assert summary["episodes"] < 400
    with pytest.raises(KshotError, match="unknown config key 'wya'"):
        TrainConfig.from_dict({"wya": 5})
    with pytest.raises(KshotError, match="lr must be a finite number > 0, got -1"):
        TrainConfig.from_dict({"lr": -1})
    with pytest.raises(KshotError, match="unknown method 'protonets'"):
        TrainConfig.from_dict({"method": "protonets"})
    with pytest.raises(KshotError, match="unknown optimizer 'rmsprop'; choose one of: adam, sgd"):
        TrainConfig.from_dict({"optimizer": "rmsprop"})
    with pytest.raises(KshotError, match="unknown lr_schedule 'cosine'; choose one of: step, linear"):
        TrainConfig.from_dict({"lr_schedule": "cosine"})


def test_learning_rate_schedules_and_the_sgd_optimizer(tmp_path, capsys):
    from kshot.images.training import learning_rate

    step = tiny_config(lr=0.8, lr_step=40, meta_batch=4)
    assert [learning_rate(step, it, 25) for it in (0, 9, 10, 20)] == [0.8, 0.8, 0.4, 0.2]
    linear = tiny_config(lr=1.0, lr_schedule="linear")
    assert [learning_rate(linear, it, 4) for it in range(4)] == [1.0, 0.75, 0.5, 0.25]
    # plain SGD (no momentum, no Adam state) trains, deterministically
    train, val = toy_data(split="train"), toy_data(split="val")
    cfg = dict(optimizer="sgd", lr=0.05, lr_schedule="linear")
    summary = meta_train(tiny_config(**cfg), tmp_path / "a", progress=False, train_data=train, val_data=val)
    assert summary["best_val_accuracy"] > 0.8
    meta_train(tiny_config(**cfg), tmp_path / "b", progress=False, train_data=train, val_data=val)
    a, _, optim_a = load_checkpoint(tmp_path / "a" / "last")
    b, _, _ = load_checkpoint(tmp_path / "b" / "last")
    assert "exp_avg" not in str(optim_a)  # an SGD state, not Adam's
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # resuming with the other optimizer is refused before anything is written; a longer linear
    # schedule is announced
    config_before = (tmp_path / "a" / "config.json").read_text()
    with pytest.raises(KshotError, match="cannot resume with optimizer 'adam': the run was trained with 'sgd'"):
        meta_train(tiny_config(lr=0.05), tmp_path / "a", resume=True, progress=False, train_data=train, val_data=val)
    assert (tmp_path / "a" / "config.json").read_text() == config_before
    summary = meta_train(
        tiny_config(episodes=80, **cfg), tmp_path / "a", resume=True, progress=False, train_data=train, val_data=val
    )
    assert summary["episodes"] == 80 and "schedule now spans 80 episodes instead of 60" in capsys.readouterr().err
    adam, _, _ = load_checkpoint(
        meta_train(tiny_config(lr=0.05), tmp_path / "c", progress=False, train_data=train, val_data=val)["run_dir"]
        + "/last"
    )
    assert not torch.equal(adam["backbone.1.weight"], a["backbone.1.weight"])


def test_protonet_shapes_and_cosine_option():
    from kshot.images.methods import build_method

    for distance in ("euclidean", "cosine"):
        m = build_method("protonet", (1, 28, 28), distance=distance)
        s, q = torch.randn(5 * 2, 1, 28, 28), torch.randn(7, 1, 28, 28)
        labels = torch.arange(5).repeat_interleave(2)
        assert m(s, labels, q).shape == (7, 5)
        assert m(s.expand(3, *s.shape), labels.expand(3, 10), q.expand(3, *q.shape)).shape == (3, 7, 5)
    with pytest.raises(KshotError, match="unknown distance 'l1'"):
        build_method("protonet", (1, 28, 28), distance="l1")


@pytest.mark.slow
def test_end_to_end_real_omniglot_reaches_90_percent(tmp_path, real_data_root):
    cfg = TrainConfig(
        method="protonet",
        dataset="omniglot",
        way=60,
        shot=1,
        query=5,
        episodes=300,
        val_every=300,
        val_episodes=100,
        data_root=str(real_data_root),
    )
    meta_train(cfg, tmp_path / "run", progress=False)
    method, _ = load_method(tmp_path / "run")
    test = kshot.load_dataset("omniglot", "test", root=real_data_root)
    score = evaluate(method, test, way=5, shot=1, query=15, episodes=300)
    assert score.accuracy > 0.90, str(score)


def test_backbone_params_that_do_not_fit_are_user_errors():
    from kshot.images.methods import build_method

    assert type(build_method("maml", (1, 6, 6), "mlp", way=5)).__name__ == "MAML"  # no BatchNorm to switch
    with pytest.raises(KshotError, match="backbone 'mlp' does not fit method 'protonet'"):
        build_method("protonet", (1, 6, 6), "mlp", backbone_params={"depth": 3})


def test_strided_conv4_is_mamls_omniglot_network():
    """downsample='stride': stride-2 convolutions and the mean of the last map (28 -> 14, 7, 4, 2 -> 64-d),
    the same parameter names and shapes as the max-pool Conv4; an unknown value is a user error."""
    from kshot.images.backbones import Conv4

    pooled, strided = Conv4(), Conv4(downsample="stride")
    assert [(n, p.shape) for n, p in pooled.named_parameters()] == [(n, p.shape) for n, p in strided.named_parameters()]
    x = torch.rand(3, 1, 28, 28)
    assert strided(x).shape == (3, 64) and strided.out_dim == 64
    assert strided[0][0].stride == (2, 2) and not any(isinstance(m, torch.nn.MaxPool2d) for m in strided.modules())
    with pytest.raises(KshotError, match="unknown downsample 'avg'; choose one of: maxpool, stride"):
        Conv4(downsample="avg")
