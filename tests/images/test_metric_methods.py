"""Siamese, Matching and Relation networks, Baseline / Baseline++: shapes, learning, checkpoints,
determinism, Siamese pair sampling, the pre-training hook and the CLI."""

import pytest
import torch
from toy import TOY, toy_data

import kshot.data
from kshot.cli import main
from kshot.core.checkpoint import load_checkpoint
from kshot.core.errors import KshotError
from kshot.images.episodes import EpisodeSampler
from kshot.images.evaluation import evaluate
from kshot.images.methods import METHODS, build_method
from kshot.images.methods.siamese import sample_pairs
from kshot.images.training import TrainConfig, load_method, meta_train, minibatch

MLP = {"hidden": [32], "out_dim": 16}
TRAIN = toy_data(n_classes=100, per_class=8)  # many classes: Siamese over-fits a dozen
CASES = {  # case id -> (method, method parameters)
    "siamese": ("siamese", {"pairs": 64}),
    "matchingnet": ("matchingnet", {}),
    "matchingnet-fce": ("matchingnet", {"fce": True, "process_steps": 3}),
    "relationnet": ("relationnet", {"hidden": 16}),
    "baseline": ("baseline", {}),
    "baseline++-finetune": ("baseline++", {"test_time": "finetune", "finetune_steps": 30}),
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one thread is much faster than two on a busy machine (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def config(case, **kw):
    name, params = CASES[case]
    base = dict(
        method=name,
        dataset="toy",
        backbone="mlp",
        way=5,
        shot=2,
        query=3,
        episodes=150,
        lr=3e-3,
        batch_size=32,
        val_way=3,
        val_shot=2,
        val_query=4,
        val_every=75,
        val_episodes=30,
        method_params=params,
        backbone_params=MLP,
    )
    return TrainConfig(**{**base, **kw})


def build(case, item_shape=(1, 6, 6), backbone="mlp"):
    name, params = CASES[case]
    extra = {"num_classes": 12} if METHODS[name].pretrains else {}
    torch.manual_seed(0)
    return build_method(name, item_shape, backbone, MLP if backbone == "mlp" else {}, **params, **extra)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Every case trained once on the toy problem: case -> (run directory, summary)."""
    train, val = TRAIN, toy_data(split="val")
    runs = {}
    for case in CASES:
        out = tmp_path_factory.mktemp(case.replace("+", "p"))
        runs[case] = out, meta_train(config(case), out, progress=False, train_data=train, val_data=val)
    return runs


@pytest.mark.parametrize("case,backbone", [(case, "mlp") for case in CASES] + [("relationnet", "conv4")])
def test_output_shapes_single_and_batched(case, backbone):
    shape = (1, 6, 6) if backbone == "mlp" else (1, 28, 28)
    method = build(case, shape, backbone).eval()
    data = toy_data(n_classes=6)
    items = data.items if backbone == "mlp" else torch.rand(len(data), *shape)
    sampler = EpisodeSampler(data.labels, 4, 2, 3, seed=1)
    one = sampler.episode(items, 0)
    batch = next(sampler.episodes(items, 3, batch=3))
    with torch.no_grad() if not method.adapts_with_gradients else torch.enable_grad():
        single = method(one.support, one.support_labels, one.query)
        batched = method(batch.support, batch.support_labels, batch.query)
    assert single.shape == (12, 4) and batched.shape == (3, 12, 4)
    assert torch.allclose(batched[0], single, atol=1e-4)  # task 0 of the batch is episode 0


@pytest.mark.parametrize("case", CASES)
def test_learns_the_toy_problem_and_round_trips_through_checkpoints(case, trained):
    out, summary = trained[case]
    method, meta = load_method(out)
    assert meta["method"] == CASES[case][0] and meta["method_params"] == method.hparams()
    # the reloaded best checkpoint reproduces the validation score it was saved with
    val = toy_data(split="val")
    again = evaluate(method, val, way=3, shot=2, query=4, episodes=30, seed=0)
    assert again.accuracy == pytest.approx(summary["best_val_accuracy"], abs=1e-9)
    test = evaluate(method, toy_data(split="test"), way=3, shot=2, query=4, episodes=60)
    assert test.accuracy > 0.75, f"{case}: {test}"  # chance is 0.33


def test_training_is_deterministic_under_a_seed(tmp_path, trained):
    train, val = TRAIN, toy_data(split="val")
    for case in ("siamese", "baseline++-finetune"):  # random pair sampling; the mini-batch path
        out = tmp_path / case
        meta_train(config(case), out, progress=False, train_data=train, val_data=val)
        a, _, _ = load_checkpoint(trained[case][0] / "last")
        b, _, _ = load_checkpoint(out / "last")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), case


@pytest.mark.parametrize("batched", [False, True])
def test_siamese_pairs_are_balanced_and_never_an_item_with_itself(batched):
    labels = torch.arange(5).repeat_interleave(3)
    labels = labels.expand(4, -1) if batched else labels
    g = torch.Generator().manual_seed(0)
    first, second, same = sample_pairs(labels, 200, generator=g)
    assert first.shape == second.shape == same.shape == ((4, 200) if batched else (200,))
    assert (first != second).all()
    truth = (labels.gather(-1, first) == labels.gather(-1, second)).float()
    assert torch.equal(truth, same) and same.sum(-1).eq(100).all()
    again = sample_pairs(labels, 200, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(x, y) for x, y in zip((first, second, same), again))
    with pytest.raises(KshotError, match="at least 2 classes and 2 items"):
        sample_pairs(torch.arange(5), 10)  # one item per class: no same-class pair


def test_pretraining_minibatches_cover_the_data_once_per_pass():
    data = toy_data()  # 240 items
    seen = torch.cat([minibatch(data, 48, seed=3, i=i)[1] for i in range(5)])
    assert sorted(seen.tolist()) == sorted(data.labels.tolist())
    items, labels = minibatch(data, 48, seed=3, i=7)
    assert items.shape == (48, 1, 6, 6) and torch.equal(minibatch(data, 48, seed=3, i=7)[0], items)


def test_baseline_gets_num_classes_and_switches_test_time(trained):
    out, _ = trained["baseline"]
    method, meta = load_method(out)
    assert meta["method_params"]["num_classes"] == 100 and method.head.out_features == 100
    assert method.base_mean.abs().sum() > 0  # tracked during pre-training
    tuned, _ = load_method(out, params={"test_time": "finetune", "finetune_steps": 10})
    assert tuned.adapts_with_gradients and not method.adapts_with_gradients
    test = toy_data(split="test")
    assert evaluate(tuned, test, way=3, shot=2, query=4, episodes=30).accuracy > 0.75
    with pytest.raises(KshotError, match="unknown test_time 'knn'"):
        load_method(out, params={"test_time": "knn"})
    with pytest.raises(KshotError, match="meta_batch must be 1"):
        config("baseline", meta_batch=4).validate()


@pytest.mark.parametrize("name", ["siamese", "matchingnet", "relationnet", "baseline", "baseline++"])
def test_cli_trains_and_evaluates_every_method(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(kshot.data.DATASETS, "toy", TOY)
    run = tmp_path / "run"
    args = [
        "train",
        "--method",
        name,
        "--dataset",
        "toy",
        "--backbone",
        "mlp",
        "--way",
        "4",
        "--shot",
        "2",
        "--query",
        "2",
        "--episodes",
        "6",
        "--val-way",
        "3",
        "--val-every",
        "6",
        "--val-episodes",
        "5",
        "--batch-size",
        "16",
        "--augment",
        "shift=1",
        "--no-progress",
        "--out",
        str(run),
    ]
    assert main(args) == 0, capsys.readouterr().err
    assert "best validation accuracy" in capsys.readouterr().out
    extra = ["-p", "test_time=finetune", "-p", "finetune_steps=5"] if name.startswith("baseline") else []
    assert (
        main(["eval", str(run), "--way", "3", "--shot", "2", "--query", "3", "--episodes", "5", "--json", *extra]) == 0
    )
    assert '"accuracy"' in capsys.readouterr().out


def test_cli_bad_method_parameter_and_augmentation_are_one_line_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(kshot.data.DATASETS, "toy", TOY)
    base = ["train", "--dataset", "toy", "--backbone", "mlp", "--way", "3", "--out", str(tmp_path / "r")]
    assert main([*base, "--method", "siamese", "-p", "pairs=1"]) == 2
    assert "pairs must be an integer >= 2, got 1" in capsys.readouterr().err
    assert main([*base, "--method", "relationnet", "--augment", "zoom=2"]) == 2
    err = capsys.readouterr().err
    assert "unknown augmentation 'zoom'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["relationnet", "baseline++"])
def test_real_omniglot_short_run_beats_chance(name, tmp_path, real_data_root):
    cfg = TrainConfig(
        method=name,
        dataset="omniglot",
        way=20,
        shot=1,
        query=5,
        episodes=200,
        batch_size=64,
        val_every=200,
        val_episodes=20,
        data_root=str(real_data_root),
    )
    meta_train(cfg, tmp_path / "run", progress=False)
    method, _ = load_method(tmp_path / "run")
    test = kshot.load_dataset("omniglot", "test", root=real_data_root)
    score = evaluate(method, test, way=5, shot=1, query=5, episodes=30)
    assert score.accuracy > 0.5, str(score)  # chance 0.2


def test_feature_maps_only_go_to_relation_networks():
    """flatten=False keeps Conv4's maps: Relation Networks use them, a flat-feature method says so."""
    params = {"hidden": 8, "downsample": "stride", "flatten": False}
    rn = build_method("relationnet", (1, 28, 28), "conv4", params, hidden=8)
    assert rn.feature_shape == (8, 2, 2)  # 28 -> 14 -> 7 -> 4 -> 2 with stride-2 convolutions
    support, labels = torch.rand(3, 1, 28, 28), torch.arange(3)
    assert rn(support, labels, torch.rand(4, 1, 28, 28)).shape == (4, 3)
    pooled = build_method("relationnet", (1, 28, 28), "conv4", {"hidden": 8, "downsample": "stride"}, hidden=8)
    assert pooled.feature_shape == (8, 1, 1)  # the strided Conv4 averages its last map by default
    for name in ("protonet", "matchingnet", "baseline", "maml"):
        with pytest.raises(KshotError, match="needs flat features.*flatten=false"):
            build_method(name, (1, 28, 28), "conv4", params, **({"num_classes": 5} if name == "baseline" else {}))


def test_conv_block_names_a_bad_downsampling():
    from kshot.images.backbones import conv_block

    with pytest.raises(KshotError, match="downsample.*'avg'"):
        conv_block(1, 4, downsample="avg")
