"""`kshot score` / kshot.text.score, the auto default's time budget, and the MR / Subj loaders."""

import csv
import json
import re

import numpy as np
import pytest

from kshot import KshotError, load_dataset
from kshot.cli import main
from kshot.text import FewShotClassifier, score

TRAIN = [
    ("where is my card", "card"),
    ("my card has not arrived", "card"),
    ("card still missing", "card"),
    ("reset my password", "password"),
    ("I forgot my password", "password"),
    ("new password please", "password"),
    ("what is the weather today", "weather"),
    ("will it rain tomorrow", "weather"),
    ("is it sunny outside", "weather"),
]
TEST = [
    ("has my card been sent", "card"),
    ("the card never came", "card"),
    ("change my password", "password"),
    ("password reset link please", "password"),
    ("how cold is it", "weather"),
    ("is it snowing", "weather"),
    ("my card password", "card"),
    ("forecast for the weekend", "weather"),
    ("lost my card again", "password"),
    ("transfer money to my mum", "transfer"),
    ("send cash to a friend", "transfer"),
]


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("text", "label"))
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def clf():
    return FewShotClassifier(method="logistic").fit(*zip(*TRAIN))


@pytest.fixture(scope="module")
def model_dir(clf, tmp_path_factory):
    return clf.save(tmp_path_factory.mktemp("score") / "model")


def test_score_matches_scikit_learn(clf):
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    texts, labels = map(list, zip(*TEST))
    result = score(clf, texts, labels, n_boot=300, seed=3)
    pred = list(clf.predict(texts))
    assert result.n == len(TEST)
    assert result.accuracy == pytest.approx(accuracy_score(labels, pred))
    truth_labels = sorted(set(labels))
    assert result.macro_f1 == pytest.approx(
        f1_score(labels, pred, labels=truth_labels, average="macro", zero_division=0)
    )
    p, r, f, s = precision_recall_fscore_support(labels, pred, labels=result.labels, zero_division=0)
    for i, label in enumerate(result.labels):
        row = result.per_class[label]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx((p[i], r[i], f[i], s[i]))
    assert (result.confusion == confusion_matrix(labels, pred, labels=result.labels)).all()
    # the unseen label 'transfer' (2 rows) is scored as an error and counted
    assert result.unseen == {"transfer": 2} and result.n_unseen == 2
    assert result.per_class["transfer"]["recall"] == 0.0
    lo, hi = result.accuracy_ci
    assert 0 <= lo <= result.accuracy <= hi <= 1 and hi > lo
    flo, fhi = result.macro_f1_ci
    assert 0 <= flo <= fhi <= 1
    again = score(clf, texts, labels, n_boot=300, seed=3)
    assert again.accuracy_ci == result.accuracy_ci and again.macro_f1_ci == result.macro_f1_ci


def test_bootstrap_macro_f1_with_unit_weights_is_scikit_learns():
    from sklearn.metrics import f1_score

    from kshot.core.report import macro_f1_boot as _macro_f1_boot

    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 5, 200), rng.integers(0, 6, 200)
    scored = np.unique(t)
    got = _macro_f1_boot(t, p, 6, scored, np.ones((1, 200)))[0]
    assert got == pytest.approx(f1_score(t, p, labels=scored, average="macro", zero_division=0))


def test_score_reject_below_reports_out_of_scope(clf):
    texts = [t for t, _ in TEST[:6]] + ["transfer money to my mum", "book a table for two"]
    labels = [y for _, y in TEST[:6]] + ["oos", "oos"]
    result = score(clf, texts, labels, reject_below=1.0)  # everything is rejected
    assert result.unseen == {}
    assert result.oos["out_of_scope_rows"] == 2 and result.oos["rejected_rows"] == 8
    assert result.oos["oos_recall"] == 1.0 and result.oos["oos_precision"] == pytest.approx(0.25)
    assert result.oos["in_scope_accuracy"] == 0.0 and result.oos["in_scope_rejected"] == 1.0
    assert result.accuracy == pytest.approx(0.25)
    assert score(clf, texts, labels).unseen == {"oos": 2}  # without rejection, 'oos' is an unseen label


def test_score_bad_input(clf):
    with pytest.raises(KshotError, match="test set is empty"):
        score(clf, [], [])
    with pytest.raises(KshotError, match="3 texts but 2 labels"):
        score(clf, ["a", "b", "c"], ["card", "card"])


def test_cli_score_json_plot_and_table(model_dir, tmp_path, capsys):
    test = write_csv(tmp_path / "test.csv", TEST)
    png = tmp_path / "cm.png"
    assert main(["score", str(model_dir), str(test), "--json", "--plot", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {
        "n",
        "accuracy",
        "accuracy_ci95",
        "macro_f1",
        "macro_f1_ci95",
        "per_class",
        "confusion",
        "labels",
        "unseen_labels",
        "n_unseen_label_rows",
        "out_of_scope",
    } <= set(out)
    assert out["n"] == len(TEST) and out["unseen_labels"] == {"transfer": 2} and out["n_unseen_label_rows"] == 2
    assert len(out["confusion"]) == len(out["labels"]) == 4 and sum(map(sum, out["confusion"])) == len(TEST)
    assert out["per_class"]["card"]["support"] == 3
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["score", str(model_dir), str(test), "--reject-below", "0.5"]) == 0
    text = capsys.readouterr().out
    assert "accuracy" in text and "macro-F1" in text and "never saw" in text and "transfer (2)" in text
    assert "reject below 0.5" in text


@pytest.mark.parametrize(
    "args,message",
    [
        (["--reject-below", "1.5"], "--reject-below must be a probability"),
        (["--label-column", "intent"], "label column 'intent' is not in"),
    ],
)
def test_cli_score_bad_input(model_dir, tmp_path, capsys, args, message):
    test = write_csv(tmp_path / "test.csv", TEST)
    assert main(["score", str(model_dir), str(test), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err


def test_cli_score_empty_file(model_dir, tmp_path, capsys):
    (tmp_path / "empty.csv").write_text("text,label\n")
    assert main(["score", str(model_dir), str(tmp_path / "empty.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "holds no rows" in err


# ------------------------------------------------------------------------------- MR / Subj
@pytest.mark.parametrize(
    "name,classes,sizes",
    [("mr", ["negative", "positive"], (5332, 5330)), ("subj", ["subjective", "objective"], (5000, 5000))],
)
def test_sentence_dev_loaders(real_data_root, name, classes, sizes):
    train, test = load_dataset(name, "train", root=real_data_root), load_dataset(name, "test", root=real_data_root)
    assert train.class_names == classes and (len(train), len(test)) == sizes
    assert len(load_dataset(name, "all", root=real_data_root)) == sum(sizes)
    assert abs(np.bincount(train.labels)[0] - np.bincount(train.labels)[1]) <= 1
    assert train.items == load_dataset(name, "train", root=real_data_root).items  # a fixed split
    with pytest.raises(KshotError, match="unknown .* split 'dev'"):
        load_dataset(name, "dev", root=real_data_root)


def test_sentence_dev_missing_file(tmp_path):
    with pytest.raises(KshotError, match="sentence-dev/rt-polarity.all"):
        load_dataset("mr", "train", root=tmp_path)


# ------------------------------------------------------------------------ the auto default
def test_auto_is_the_default_and_a_tiny_budget_keeps_the_encoder_frozen(tmp_path, capsys):
    texts, labels = map(list, zip(*TRAIN))
    clf = FewShotClassifier(time_budget=0.01, progress=True).fit(texts, labels)
    assert clf.method == "auto" and not clf.finetuned_
    assert clf.recipe_.startswith("frozen encoder, label names as examples") and "C=" in clf.recipe_
    assert "auto (time budget 0.01 s): frozen encoder" in capsys.readouterr().err
    assert len(clf.head_.X) == len(TRAIN) + 3  # the three label texts joined as examples
    assert clf.predict(["where is my card"]).tolist() == ["card"]
    clf.partial_fit(["send money abroad", "pay my friend"], ["transfer", "transfer"])  # frozen: allowed
    loaded = FewShotClassifier.load(clf.save(tmp_path / "m"))
    assert loaded.method == "auto" and loaded.recipe_ == clf.recipe_


def test_auto_fine_tunes_within_its_budget(monkeypatch):
    from kshot.text import auto

    monkeypatch.setattr(auto, "seconds_per_text", lambda encoder, texts: 1e-3)  # a fast machine
    texts, labels = map(list, zip(*TRAIN))
    digits = [{"card": "0", "password": "1", "weather": "2"}[y] for y in labels]
    clf = FewShotClassifier(time_budget="6s", seed=1).fit(texts, digits)  # a few real steps
    # planned 40 steps from the (faked) probe; the recipe reports the steps the time limit let run
    steps = re.match(r"contrastive fine-tuning, (\d+) steps of 3 classes x 10 texts", clf.recipe_)
    assert clf.finetuned_ and steps and 1 <= int(steps.group(1)) <= 40, clf.recipe_
    assert "label names" not in clf.recipe_  # digits are not words
    assert "weights 70% fine-tuned + 30% pre-trained" in clf.recipe_  # the WiSE-FT blend
    assert clf.predict(["will it be sunny"]).tolist() == ["2"]


def test_blend_into_averages_weights_with_the_pretrained_encoder():
    import torch

    from kshot.text import SentenceEncoder

    base = SentenceEncoder()
    tuned = base.trainable()
    with torch.no_grad():
        for p in tuned.model.parameters():
            p.add_(1.0)  # a stand-in for fine-tuning
    name, before = next((n, p.detach().clone()) for n, p in tuned.model.named_parameters())
    original = dict(base.model.named_parameters())[name].detach().clone()
    tuned.blend_into(base, 0.25)
    after = dict(tuned.model.named_parameters())[name].detach()
    assert torch.allclose(after, 0.25 * before + 0.75 * original, atol=1e-6)
    assert torch.allclose(after, original + 0.25, atol=1e-5)
    assert torch.equal(dict(base.model.named_parameters())[name].detach(), original)  # the base is untouched
    with pytest.raises(KshotError, match="only a trainable copy"):
        base.blend_into(tuned, 0.5)


def test_auto_plan_and_cv():
    from kshot.text import auto

    fast = auto.plan(616, 77, 120.0, 1e-3, 1.0)[0]
    assert fast.finetune and (fast.classes_per_step, fast.per_class) == (16, 2) and fast.steps == 385
    slow = auto.plan(616, 77, 120.0, 1.0, 1.0)[0]
    assert not slow.finetune and "fit only 0 steps" in slow.why
    # long texts: re-encoding reads every window, a training step one window per text
    one, four = auto.plan(40, 5, 120.0, 0.02, 1.0), auto.plan(40, 5, 120.0, 0.02, 1.0, n_windows=160)
    assert four[1] == pytest.approx(one[1] - 120 * 0.02, abs=1e-9) and four[0].steps == one[0].steps == 40
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 8)).astype(np.float32)
    y = np.repeat(np.arange(3), 10)
    X[np.arange(30), y] += 3
    assert auto.choose_C(X / np.linalg.norm(X, axis=1, keepdims=True), y, 3) in auto.C_GRID
    assert auto.choose_C(X, np.arange(30) % 30, 30) == 10.0  # one example per class: no CV


def test_label_names_count_as_words_when_nearly_all_are():
    from kshot.text import auto

    assert auto.labels_are_words(["positive", "negative"]) and auto.labels_are_words(["card_arrival"])
    assert not auto.labels_are_words(["0", "1"]) and not auto.labels_are_words(["A1", "B2", "card"])
    assert auto.labels_are_words([f"intent_{chr(97 + i)}x" for i in range(19)] + ["w2"])  # one code in 20
    assert not auto.labels_are_words([])


@pytest.mark.parametrize("value", [0, -5, "0", "soon", "1d", float("nan"), True, float("inf")])
def test_bad_time_budget(tmp_path, capsys, value):
    with pytest.raises(KshotError, match="time_budget must be a positive duration"):
        FewShotClassifier(time_budget=value).fit(*zip(*TRAIN))
    write_csv(tmp_path / "train.csv", TRAIN)
    assert main(["fit", str(tmp_path / "train.csv"), "--out", str(tmp_path / "m"), "--time-budget", str(value)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --time-budget must be a positive duration") and "\n" not in err
    assert not (tmp_path / "m").exists()


def test_cli_fit_auto_prints_budget_and_choice(tmp_path, capsys):
    write_csv(tmp_path / "train.csv", TRAIN)
    assert (
        main(
            [
                "fit",
                str(tmp_path / "train.csv"),
                "--out",
                str(tmp_path / "m"),
                "--time-budget",
                "0.05s",
                "--no-progress",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "auto: time budget 0.05 s" in err and "auto chose: frozen encoder" in err


def test_the_step_budget_shrinks_when_the_machine_slows_down_mid_run(monkeypatch):
    import torch

    from kshot.core import loop

    clock = [0.0]
    monkeypatch.setattr(loop.time, "perf_counter", lambda: clock[0])  # a fake clock the steps advance
    w = torch.zeros(2, requires_grad=True)

    def step_loss(step):
        clock[0] += 1.0 if step < loop.PROBE + 2 else 5.0  # five times slower after a few steps
        return ((w - 1.0) ** 2).sum()

    losses = loop.run_steps([{"params": [w], "lr": 0.1}], 1000, step_loss, time_limit=60.0)
    # the probe's speed would allow 60 steps; re-timed before every step, the run stops within the limit
    assert 10 < len(losses) < 20 and clock[0] <= 60.0 + 5.0
    assert float(w.detach().sum()) > 0.5  # it did optimise


@pytest.mark.parametrize("max_steps,expected", [(None, 20), (45, 45), (1000, 60)])
def test_the_step_budget_grows_during_the_warm_up_when_the_plan_was_pessimistic(monkeypatch, max_steps, expected):
    import torch

    from kshot.core import loop

    clock = [0.0]
    monkeypatch.setattr(loop.time, "perf_counter", lambda: clock[0])
    w = torch.zeros(2, requires_grad=True)
    lrs = []

    def step_loss(step):
        clock[0] += 1.0  # 60 steps fit in the 60 s limit
        lrs.append(float(opt_lr[0]()))
        return ((w - 1.0) ** 2).sum()

    opt_lr = [lambda: 0.0]
    real_adamw = torch.optim.AdamW

    def adamw(*args, **kwargs):  # keep a handle on the optimiser to read the learning rate of each step
        opt = real_adamw(*args, **kwargs)
        opt_lr[0] = lambda: opt.param_groups[0]["lr"]
        return opt

    monkeypatch.setattr(loop.torch.optim, "AdamW", adamw)
    losses = loop.run_steps([{"params": [w], "lr": 0.1}], 20, step_loss, time_limit=60.0, max_steps=max_steps)
    # the plan said 20 steps; the steps run at the planned limit's pace for 60, so the budget grows to
    # min(max_steps, 60) during the warm-up, and never without max_steps
    assert len(losses) == expected and clock[0] <= 60.0
    settled = max(loop.PROBE, int(0.1 * expected)) + 1  # the warm-up as finally planned
    assert all(a >= b for a, b in zip(lrs[settled:], lrs[settled + 1 :]))  # then it only decays, to ~0
    assert lrs[-1] < 0.1 * max(lrs)
