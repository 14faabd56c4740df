"""kshot image fit / predict / score on drawn photo folders, the bad-input paths (one line, exit 2), and
kshot image eval --pretrained on Fashion-MNIST IDX files."""

import csv
import gzip
import io
import json

import numpy as np
import pytest
from photos import make_folder
from PIL import Image

from kshot.cli import main


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    train = make_folder(root / "train", 3, seed=0)
    make_folder(root / "test", 2, seed=1)  # the photos the tests below predict
    assert (
        main(
            [
                "image",
                "fit",
                str(train),
                "--out",
                str(root / "m"),
                "--method",
                "logistic",
                "-p",
                "image_size=64",
                "--no-progress",
            ]
        )
        == 0
    )
    return root


def test_predict_over_a_folder_reports_unreadable_files_and_keeps_going(model, capsys):
    new = model / "new"
    make_folder(new, 1, seed=3)
    (new / "circle" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (new / "README.txt").write_text("not a photo")
    out = model / "preds.csv"
    out.write_text("previous predictions\n")
    capsys.readouterr()
    assert (
        main(["image", "predict", str(model / "m"), str(new), "--output", str(out), "--top-k", "2", "--no-progress"])
        == 0
    )
    err = capsys.readouterr().err
    assert "1 of 4 files could not be read" in err and "broken.jpg" in err and "1 files that are not images" in err
    rows = list(csv.DictReader(out.open()))
    assert [r["path"].rsplit("/", 2)[-2] for r in rows] == ["circle", "circle", "square", "triangle"]
    good = [r for r in rows if not r["error"]]
    assert [r["prediction"] for r in good] == ["circle", "square", "triangle"]
    assert all(len(r["top_k"].split(";")) == 2 and 0 < float(r["score"]) <= 1 for r in good)
    bad = [r for r in rows if r["error"]][0]
    assert bad["path"].endswith("broken.jpg") and "corrupt or truncated" in bad["error"] and bad["prediction"] == ""


def test_predict_to_stdout_and_globs(model, capsys):
    capsys.readouterr()
    assert main(["image", "predict", str(model / "m"), str(model / "test" / "*" / "0.jpg"), "--no-progress"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["prediction"] for r in rows] == ["circle", "square", "triangle"]


def test_score_json_and_plot(model, capsys):
    capsys.readouterr()
    plot = model / "confusion.png"
    assert main(["image", "score", str(model / "m"), str(model / "test"), "--json", "--plot", str(plot)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 6 and report["accuracy"] == 1.0 and report["confusion"] == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    assert set(report["per_class"]) == {"circle", "square", "triangle"}
    assert Image.open(plot).format == "PNG"
    assert main(["image", "score", str(model / "m"), str(model / "test"), "--no-progress"]) == 0
    assert "accuracy 100.00 %" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["image", "fit", "{root}/nowhere", "--out", "{root}/x"], "photo folder .*nowhere does not exist"),
        (["image", "fit", "{root}/missing.csv", "--out", "{root}/x"], "label file .*missing.csv does not exist"),
        (
            ["image", "fit", "{root}/train", "--out", "{root}/x", "--method", "prototype", "--steps", "5"],
            "--steps=5 does not apply to method 'prototype'",
        ),
        (
            ["image", "fit", "{root}/train", "--out", "{root}/x", "-p", "colour=1"],
            "-p colour: not a FewShotImageClassifier",
        ),
        (
            ["image", "fit", "{root}/train", "--out", "{root}/x", "--device", "cuda:7"],
            "--device 'cuda:7' is not available",
        ),
        (["image", "predict", "{root}/m", "{root}/nothing*.jpg"], "no file matches"),
        (["image", "predict", "{root}/m", "{root}/test", "--output", "{root}/p.xlsx"], "unknown file format '.xlsx'"),
        (["image", "predict", "{root}/train", "{root}/test"], "is not a kshot model directory"),
        (["image", "score", "{root}/m", "{root}/test", "--reject-below", "2"], "--reject-below must be a probability"),
        (["image", "eval"], "give a run directory, or --pretrained"),
        (["image", "eval", "--pretrained", "efficientnet-lite0"], "--pretrained needs --dataset"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(model, capsys, args, message):
    import re

    capsys.readouterr()
    assert main([a.format(root=model) for a in args]) == 2
    assert re.search(message, one_error_line(capsys))


def test_fit_refuses_a_truncated_photo_naming_it(tmp_path, capsys):
    make_folder(tmp_path / "p", 1)
    Image.new("RGB", (1, 1)).save(tmp_path / "p" / "circle" / "dot.png")
    assert (
        main(
            [
                "image",
                "fit",
                str(tmp_path / "p"),
                "--out",
                str(tmp_path / "m"),
                "--method",
                "prototype",
                "--no-progress",
            ]
        )
        == 2
    )
    assert "dot.png is 1x1 pixels" in one_error_line(capsys)
    assert not (tmp_path / "m").exists()


def write_idx(folder, name, array):
    dims = array.ndim
    header = bytes([0, 0, 8, dims]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    (folder / f"{name}.gz").write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture
def fashion_root(tmp_path):
    """A miniature Fashion-MNIST in the Debian layout: 20 images a class, drawn bars of different widths."""
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for which, n in (("train", 20), ("t10k", 20)):
        labels = np.repeat(np.arange(10), n)
        images = np.zeros((len(labels), 28, 28))
        for i, c in enumerate(labels):
            images[i, 4:24, 12 - c : 14 + c] = 200 + rng.integers(0, 55)
        write_idx(folder, f"{which}-images-idx3-ubyte", images)
        write_idx(folder, f"{which}-labels-idx1-ubyte", labels)
    return tmp_path


def test_fashion_mnist_loader_splits(fashion_root):
    from kshot.data import load_dataset

    train = load_dataset("fashion-mnist", "train", root=fashion_root)
    test = load_dataset("fashion-mnist", "test", root=fashion_root)
    assert train.class_names[0] == "T-shirt/top" and test.class_names == [
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]
    assert train.items.shape == (100, 1, 28, 28) and float(train.items.max()) <= 1 and set(test.labels) == set(range(5))
    (fashion_root / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b broken")
    from kshot.data import fashion_mnist

    fashion_mnist._read.cache_clear()
    with pytest.raises(Exception, match="corrupt or truncated"):
        load_dataset("fashion-mnist", "test", root=fashion_root)


def test_eval_pretrained_on_fixed_episodes(fashion_root, capsys):
    capsys.readouterr()
    assert (
        main(
            [
                "image",
                "eval",
                "--pretrained",
                "efficientnet-lite0",
                "--dataset",
                "fashion-mnist",
                "--data-root",
                str(fashion_root),
                "--shots",
                "1,5",
                "--episodes",
                "3",
                "--query",
                "5",
                "--image-size",
                "32",
                "--invert",
                "--method",
                "prototype,sklearn,auto",
                "--json",
                "--no-progress",
            ]
        )
        == 0
    )
    results = json.loads(capsys.readouterr().out)["results"]
    assert [(r["shot"], r["method"]) for r in results] == [
        (s, m) for s in (1, 5) for m in ("prototype", "sklearn", "auto")
    ]
    assert all(r["episodes"] == 3 and 0 <= r["accuracy"] <= 1 for r in results)
    assert results[2]["auto_chose"] == {"logistic": 3}


def test_real_fashion_mnist_when_installed():
    from kshot.data import fashion_mnist, load_dataset

    if fashion_mnist.missing_files():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    test = load_dataset("fashion-mnist", "test")
    assert len(test) == 5000 and np.bincount(test.labels).tolist() == [1000] * 5
