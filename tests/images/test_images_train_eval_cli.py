import json

import pytest
from toy import TOY

from kshot.cli import main
from kshot.data import DATASETS


@pytest.fixture
def toy_registered(monkeypatch):
    monkeypatch.setitem(DATASETS, "toy", TOY)


TRAIN = [
    "train",
    "--dataset",
    "toy",
    "--backbone",
    "mlp",
    "--way",
    "4",
    "--shot",
    "2",
    "--query",
    "3",
    "--episodes",
    "20",
    "--val-way",
    "3",
    "--val-every",
    "10",
    "--val-episodes",
    "10",
    "--no-progress",
]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_train_eval_json_and_resume(tmp_path, toy_registered, capsys):
    run = tmp_path / "run"
    assert main([*TRAIN, "--out", str(run)]) == 0
    assert "best validation accuracy" in capsys.readouterr().out
    assert (
        main(
            [
                "eval",
                str(run),
                "--way",
                "3",
                "--shot",
                "2",
                "--query",
                "4",
                "--episodes",
                "30",
                "--split",
                "test",
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert {"accuracy", "ci95", "episodes", "way", "shot"} <= set(result)
    assert result["episodes"] == 30 and result["way"] == 3 and 0 <= result["accuracy"] <= 1
    # a second train into the same folder is refused; --resume extends it
    assert main([*TRAIN, "--out", str(run)]) == 2
    assert "already holds a run" in one_error_line(capsys)
    assert main(["train", "--out", str(run), "--episodes", "30", "--resume", "--no-progress"]) == 0
    assert json.loads((run / "last.json").read_text())["episodes_done"] == 30


def test_config_file_with_flag_overrides(tmp_path, toy_registered, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        'dataset = "toy"\nbackbone = "mlp"\nway = 4\nshot = 3\nquery = 2\nepisodes = 10\n'
        'val_way = 3\nval_episodes = 5\nlr = 0.01\n[method_params]\ndistance = "cosine"\n'
    )
    assert main(["train", "--config", str(cfg), "--shot", "1", "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    stored = json.loads((tmp_path / "r" / "config.json").read_text())
    assert stored["shot"] == 1 and stored["way"] == 4 and stored["lr"] == 0.01
    assert stored["method_params"] == {"distance": "cosine"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--dataset", "mnist", "--out", "X"], "unknown dataset 'mnist'"),
        (["train", "--method", "protonets", "--out", "X"], "unknown method 'protonets'"),
        (
            ["train", "--dataset", "toy", "--backbone", "mlp", "--way", "50", "--out", "X"],
            "way=50 is larger than the number of classes (12)",
        ),
        (
            [
                "train",
                "--dataset",
                "toy",
                "--backbone",
                "mlp",
                "--way",
                "4",
                "--shot",
                "15",
                "--query",
                "10",
                "--out",
                "X",
            ],
            "shot + query = 25 is larger than the smallest class (20 items)",
        ),
        (["train", "--dataset", "toy", "--shot", "0", "--out", "X"], "--shots takes integers >= 1, got 0"),
        (
            ["train", "--dataset", "toy", "--backbone", "resnet99", "--out", "X"],
            "unknown backbone 'resnet99'; choose one of: conv4, mlp",
        ),
        (["train", "--config", "missing.toml", "--out", "X"], "config file missing.toml does not exist"),
        (["train", "--dataset", "toy", "-p", "distance", "--out", "X"], "--param takes KEY=VALUE"),
        (["eval", "no-such-run"], "run directory no-such-run does not exist"),
        (
            ["train", "--dataset", "toy", "--lr-schedule", "linear", "--lr-step", "100", "--out", "X"],
            "--lr-step 100 has no effect with --lr-schedule linear",
        ),
    ],
)
def test_user_errors_are_one_line_and_exit_2(args, message, tmp_path, toy_registered, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert message in one_error_line(capsys)


def test_bad_config_values(tmp_path, toy_registered, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"lr": "fast"}')
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert "lr must be a finite number > 0, got 'fast'" in one_error_line(capsys)
    bad.write_text('{"way": 5,')
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert "cannot parse config file" in one_error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_usage_errors_exit_2(capsys):
    assert main(["eval"]) == 2  # missing argument: typer's usage error
    assert main(["no-such-command"]) == 2


def test_datasets_lists_presence(tmp_path, capsys):
    assert main(["datasets", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "omniglot" in out and "missing" in out


def test_tensorboard_flag_without_tensorboard_is_a_clear_error(tmp_path, toy_registered, capsys):
    try:
        import tensorboard  # noqa: F401

        pytest.skip("tensorboard is installed")
    except ImportError:
        pass
    assert main([*TRAIN, "--tensorboard", "--out", str(tmp_path / "r")]) == 2
    assert "pip install 'kshot[tensorboard]'" in one_error_line(capsys)
    assert not (tmp_path / "r").exists()
