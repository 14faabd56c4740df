"""Interaction data: the generic reader, its bad inputs, the MovieLens-100K loader (on KSHOT_DATA) and its
sha256-checked download against a loopback HTTP server serving a small zip made here."""

import hashlib
import io
import json
import os
import zipfile

import numpy as np
import pytest

from kshot.core.errors import ChecksumError, DataError
from kshot.data import DATASETS, load_dataset
from kshot.data.interactions import read_interactions
from kshot.data.movielens import download_movielens, load_movielens


def write(path, text):
    path.write_text(text)
    return path


def test_read_csv_and_jsonl_with_features(tmp_path):
    ratings = write(tmp_path / "r.csv", "user,item,rating,timestamp\na,x,5,3\na,y,2,1\nb,x,4,2\n")
    items = write(tmp_path / "i.csv", "item,title,genre,price\nx,The X,Drama|Comedy,10\ny,Why,Drama,20\nz,Zed,,30\n")
    users = write(tmp_path / "u.csv", "user,age\na,20\nb,40\n")
    d = read_interactions(ratings, items, users)
    assert d.item_ids == ["x", "y", "z"] and d.user_ids == ["a", "b"] and len(d) == 3
    assert d.item_feature_names == ["genre=Comedy", "genre=Drama", "price"]
    np.testing.assert_allclose(d.item_features[:, :2], [[1, 1], [0, 1], [0, 0]])
    np.testing.assert_allclose(d.item_features[:, 2], [-1.2247449, 0, 1.2247449], rtol=1e-5)
    np.testing.assert_allclose(d.user_features[:, 0], [-1, 1])
    assert d.item_titles == ["The X", "Why", "Zed"]
    rows = d.user_rows()
    assert d.items[rows[0]].tolist() == [1, 0]  # user a in time order: y (t=1) then x (t=3)
    jl = write(
        tmp_path / "r.jsonl",
        "\n".join(
            json.dumps(r) for r in ({"user": 1, "item": "x", "rating": 4}, {"user": 2, "item": "x", "rating": 1.5})
        )
        + "\n",
    )
    d2 = read_interactions(jl)
    assert d2.user_ids == ["1", "2"] and d2.ratings.tolist() == [4.0, 1.5] and d2.item_features.shape == (1, 0)


@pytest.mark.parametrize(
    "text, match",
    [
        ("user,item,rating\na,x,6\n", "rating 6 of user a for item x is outside the scale 1..5"),
        ("user,item,rating\na,x,3\nb,x,2\na,x,4\n", "duplicate rating of user a for item x"),
        ("", "no ratings"),
        ("user,item,rating\n", "no ratings"),
        ("user,item\na,x\n", "missing rating"),
        ("user,item,rating\na,x,good\n", "rating 'good' is not a number"),
    ],
)
def test_bad_interaction_files(tmp_path, text, match):
    path = write(tmp_path / "r.csv", text)
    with pytest.raises(DataError, match=match) as err:
        read_interactions(path)
    assert "\n" not in str(err.value)


def test_missing_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_interactions(tmp_path / "nope.csv")
    ratings = write(tmp_path / "r.csv", "user,item,rating\na,x,3\n")
    with pytest.raises(DataError, match="items.csv does not exist"):
        read_interactions(ratings, tmp_path / "items.csv")
    with pytest.raises(DataError) as err:
        load_dataset("movielens-100k", "all", root=tmp_path)
    msg = str(err.value)
    assert "movielens-100k/u.data" in msg and "u.item" in msg and "u.user" in msg
    assert str(tmp_path / "movielens-100k") in msg and "ml-100k.zip" in msg and "\n" not in msg
    assert DATASETS["movielens-100k"].files(tmp_path) == [f"movielens-100k/{f}" for f in ("u.data", "u.item", "u.user")]


@pytest.mark.skipif(not os.environ.get("KSHOT_DATA"), reason="KSHOT_DATA is not set")
def test_movielens_100k_loader():
    d = load_movielens()
    assert (d.n_users, d.n_items, len(d)) == (943, 1682, 100_000)
    assert set(np.unique(d.ratings).tolist()) == {1, 2, 3, 4, 5}
    assert np.bincount(d.users).min() == 20
    assert d.item_feature_names[:19][1] == "genre=Action" and d.item_feature_names[-1] == "year"
    assert d.item_titles[0] == "Toy Story (1995)"
    toy = d.item_features[0]
    assert toy[:19].tolist() == [0, 0, 0, 1, 1, 1] + [0] * 13  # Animation, Children's, Comedy
    assert {"gender=M", "gender=F", "occupation=technician", "zip=8", "age"} <= set(d.user_feature_names)
    assert d.user_features[:, d.user_feature_names.index("gender=M")].sum() == 670


# ---- download over loopback HTTP ---------------------------------------------------------------------


def tiny_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-100k/u.data", "1\t1\t5\t100\n1\t2\t3\t101\n2\t1\t4\t102\n")
        flags = "|".join(["0"] * 18)
        zf.writestr("ml-100k/u.item", f"1|A (1995)|01-Jan-1995||url|1|{flags}\n2|B (1990)|01-Jan-1990||url|0|{flags}\n")
        zf.writestr("ml-100k/u.user", "1|24|M|technician|85711\n2|53|F|other|T8H1N\n")
        zf.writestr("ml-100k/README", "tiny")
    return buf.getvalue()


def test_download_checks_sha256_then_unpacks(tmp_path, http_server):
    served, url = http_server
    payload = tiny_zip()
    (served / "ml-100k.zip").write_bytes(payload)
    root = tmp_path / "root"
    with pytest.raises(ChecksumError, match="sha256"):
        download_movielens(root, f"{url}/ml-100k.zip", "0" * 64, progress=False)
    assert not (root / "movielens-100k").exists() or not any((root / "movielens-100k").iterdir())
    folder = download_movielens(root, f"{url}/ml-100k.zip", hashlib.sha256(payload).hexdigest(), progress=False)
    assert sorted(p.name for p in folder.iterdir()) == ["ml-100k.zip", "u.data", "u.item", "u.user"]
    d = load_movielens(root=root)
    assert (d.n_users, d.n_items, len(d)) == (2, 2, 3) and d.item_titles == ["A (1995)", "B (1990)"]
    assert d.user_features[1, d.user_feature_names.index("zip=other")] == 1
