"""`kshot recsys train|eval` and `kshot recommend` end to end on a tiny synthetic dataset written as CSV
files, and their bad inputs (one line on stderr, exit 2, nothing written)."""

import json

import pytest
from ratings import synthetic

from kshot.cli import main
from kshot.recsys.recommender import CANDIDATES


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = synthetic(n_users=50, n_items=40, per_user=22, seed=1)
    root = tmp_path_factory.mktemp("shop")
    lines = ["user,item,rating,timestamp"] + [
        f"{d.user_ids[u]},{d.item_ids[i]},{r:g},{t}" for u, i, r, t in zip(d.users, d.items, d.ratings, d.timestamps)
    ]
    (root / "ratings.csv").write_text("\n".join(lines) + "\n")
    (root / "items.csv").write_text(
        "item,title,genre\n"
        + "".join(f"{i},Movie {i},{'Drama' if f[0] else 'Comedy'}\n" for i, f in zip(d.item_ids, d.item_features))
    )
    (root / "users.csv").write_text(
        "user,group\n" + "".join(f"{u},{'a' if f[0] else 'b'}\n" for u, f in zip(d.user_ids, d.user_features))
    )
    return root


def train(files, out, method, *extra):
    return main(
        [
            "recsys",
            "train",
            "--ratings",
            str(files / "ratings.csv"),
            "--item-features",
            str(files / "items.csv"),
            "--user-features",
            str(files / "users.csv"),
            "--method",
            method,
            "--fold",
            "1",
            "--folds",
            "4",
            "--out",
            str(out),
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def run(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "itemknn"
    assert train(files, out, "itemknn") == 0
    return out


def test_train_eval_recommend_end_to_end(files, run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["recsys", "eval", str(run), "--shots", "0", "1", "3", "5", "10", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["method"] == "itemknn" and result["fold"] == 1 and set(result["shots"]) == {"0", "1", "3", "5", "10"}
    for k, row in result["shots"].items():
        assert row["mae"]["n"] == result["test_tasks"] and 0 < row["mae"]["mean"] < 2
        assert row["mae"]["ci95"] > 0 and 0 <= row["ndcg10"]["mean"] <= 1
    assert result["shots"]["10"]["mae"]["mean"] < result["shots"]["0"]["mae"]["mean"]
    assert main(["recsys", "eval", str(run)]) == 0
    assert "ndcg10" in capsys.readouterr().out

    mine = tmp_path / "mine.csv"
    mine.write_text("item,rating\n3,5\nMovie 7,1\n12,4\n")
    assert main(["recommend", str(run), "--ratings", str(mine), "--top", "5"]) == 0
    out = capsys.readouterr().out
    assert "top 5 for a new user with 3 ratings" in out and out.count("Movie ") == 5
    assert "Movie 7 " not in out and "Movie 3 " not in out  # rated items are left out


def test_melu_trains_through_the_cli(files, tmp_path, capsys):
    out = tmp_path / "melu"
    assert (
        train(
            files, out, "melu", "-p", "train_steps=10", "-p", "eval_every=10", "-p", "test_steps=1", "-p", "test_lr=0.1"
        )
        == 0
    )
    assert "melu fitted" in capsys.readouterr().out
    mine = tmp_path / "mine.csv"
    mine.write_text("item,rating\n3,5\n")
    assert main(["recommend", str(out), "--ratings", str(mine), "--top", "3"]) == 0


@pytest.mark.parametrize(
    "content, match",
    [
        ("item,rating\n3,6\n", "rating 6.0 for item 3 is outside the scale 1..5"),
        ("item,rating\n3,4\nnope,2\nalso-nope,1\n", "unknown item(s) nope, also-nope"),
        ("", "is empty"),
        ("item,rating\n3,4\n3,5\n", "item '3' is given twice"),
        ("thing,stars\n3,4\n", "needs a column item"),
        ("item,rating\n3,four\n", "rating 'four' is not a number"),
    ],
)
def test_recommend_bad_ratings(run, tmp_path, capsys, content, match):
    mine = tmp_path / "mine.csv"
    mine.write_text(content)
    capsys.readouterr()
    assert main(["recommend", str(run), "--ratings", str(mine)]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1


def test_cli_bad_inputs(files, run, tmp_path, capsys):
    capsys.readouterr()
    cases = [
        (["recsys", "eval", str(run), "--shots", "50"], "K=50 is larger than the 10 support ratings"),
        (["recommend", str(run), "--ratings", str(tmp_path / "none.csv")], "does not exist"),
        (
            [
                "recsys",
                "train",
                "--dataset",
                "movielens-100k",
                "--data-root",
                str(tmp_path),
                "--out",
                str(tmp_path / "x"),
            ],
            "movielens-100k/u.data",
        ),
        (["recsys", "train", "--method", "nope", "--out", str(tmp_path / "y")], "unknown method 'nope'"),
        (["recsys", "eval", str(tmp_path / "nothing")], "not a kshot model directory"),
    ]
    for argv, match in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert match in err and err.count("\n") == 1, err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()  # nothing written
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,rating\na,x,3\na,x,4\n")
    assert main(["recsys", "train", "--ratings", str(bad), "--out", str(tmp_path / "z")]) == 2
    assert "duplicate rating of user a for item x" in capsys.readouterr().err and not (tmp_path / "z").exists()


@pytest.fixture(scope="module")
def auto_run(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "auto"
    assert train(files, out, "auto", "-p", "factors=8") == 0
    return out


def test_auto_train_eval_recommend_explain_and_ask(files, auto_run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["recsys", "eval", str(auto_run), "--shots", "0,3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["method"] == "auto" and result["chosen"] in CANDIDATES
    row = result["shots"]["3"]
    assert row["mae"]["mean"] is None and 0 < row["ndcg10"]["mean"] <= 1 and 0 < row["mrr"]["mean"] <= 1
    assert 0 < row["coverage"]["mean"] <= 1 and 0 < row["popularity"]["mean"] < 1
    assert main(["recsys", "eval", str(auto_run)]) == 0
    out = capsys.readouterr().out
    assert "recall20" in out and "coverage" in out and "mae" not in out
    clicks = tmp_path / "clicks.csv"
    clicks.write_text("item\n3\nMovie 7\n12\n")
    assert main(["recommend", str(auto_run), "--ratings", str(clicks), "-n", "4", "--explain", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["items"] == 3 and len(got["recommendations"]) == 4
    for r in got["recommendations"]:
        assert r["item"] not in ("3", "7", "12") and {b["item"] for b in r["because"]} <= {"3", "7", "12"}
    assert main(["recommend", str(auto_run), "--ratings", str(clicks), "--explain"]) == 0
    assert "because" in capsys.readouterr().out
    newcomer = tmp_path / "none.csv"
    newcomer.write_text("item,rating\n")
    assert main(["recommend", str(auto_run), "--ratings", str(newcomer), "-n", "3", "--json"]) == 0  # K = 0
    got = json.loads(capsys.readouterr().out)
    assert got["items"] == 0 and len(got["recommendations"]) == 3

    assert main(["recsys", "ask", str(auto_run), "--n", "3", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)["ask"]
    assert len(first) == 3
    answers = tmp_path / "answers.csv"
    answers.write_text(f"item,rating\n{first[0]['item']},5\n{first[1]['item']},not seen\n{first[2]['item']},4\n")
    assert (
        main(["recsys", "ask", str(auto_run), "--n", "3", "--answers", str(answers), "--recommend", "2", "--json"]) == 0
    )
    nxt = json.loads(capsys.readouterr().out)
    assert nxt["answered"] == 3 and nxt["seen"] == 2 and len(nxt["ask"]) == 3 and len(nxt["recommendations"]) == 2
    assert not {r["item"] for r in nxt["ask"]} & {r["item"] for r in first}
    assert main(["recsys", "ask", str(auto_run), "--n", "2"]) == 0
    out = capsys.readouterr().out
    assert "ask a newcomer about" in out and out.count("Movie ") == 2


def test_ask_a_batch_answered_in_part_is_shown_again_then_the_next(auto_run, tmp_path, capsys):
    """The stateless replay of `ask --answers`: answering what each call listed never fails, whatever
    part of a batch was answered between the calls."""
    capsys.readouterr()

    def ask(answers=None):
        extra = ["--answers", str(answers)] if answers else []
        assert main(["recsys", "ask", str(auto_run), "--n", "4", "--json", *extra]) == 0
        return json.loads(capsys.readouterr().out)

    first = ask()["ask"]
    answers = tmp_path / "answers.csv"
    given = [(first[0]["item"], "5"), (first[1]["item"], "not seen")]
    answers.write_text("item,rating\n" + "".join(f"{i},{r}\n" for i, r in given))
    rest = ask(answers)
    assert [r["item"] for r in rest["ask"]] == [first[2]["item"], first[3]["item"]] and rest["still_to_answer"] == 2
    given += [(rest["ask"][0]["item"], "4"), (rest["ask"][1]["item"], "2")]
    answers.write_text("item,rating\n" + "".join(f"{i},{r}\n" for i, r in given))
    second = ask(answers)
    assert second["still_to_answer"] == 0 and len(second["ask"]) == 4
    assert not {r["item"] for r in second["ask"]} & {r["item"] for r in first}
    given += [(second["ask"][0]["item"], "3")]  # part of the second batch
    answers.write_text("item,rating\n" + "".join(f"{i},{r}\n" for i, r in given))
    assert [r["item"] for r in ask(answers)["ask"]] == [r["item"] for r in second["ask"][1:]]


def test_bad_settings_and_out_path(files, tmp_path, capsys):
    capsys.readouterr()
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = [
        (["-p", "lam=abc"], "ease", "lam='abc' for method 'ease' must be a number > 0"),
        (["-p", "lam=0"], "ease", "lam=0 for method 'ease' must be a number > 0"),
        (["-p", "neighbours=-5"], "knn", "neighbours=-5 for method 'knn' must be a whole number >= 0"),
        (["-p", "disliked=3"], "ease", "disliked=3 for method 'ease' must be a number >= 0 and <= 1"),
        (["-p", "signal=some"], "ease", "unknown signal (method 'ease') 'some'; choose one of: positive, all"),
        (["-p", "train_steps=0"], "gru", "train_steps=0 for method 'gru' must be a whole number > 0"),
    ]
    for extra, method, match in cases:
        assert train(files, tmp_path / "never", method, *extra) == 2, extra
        err = capsys.readouterr().err
        assert match in err and err.count("\n") == 1, err
    assert train(files, afile, "popularity") == 2
    assert "--out " + str(afile) + " is a file" in capsys.readouterr().err and afile.read_text() == "x"
    assert not (tmp_path / "never").exists()


def test_a_file_with_a_byte_order_mark_reads(files, tmp_path, capsys):
    """Spreadsheets save 'CSV UTF-8' with a byte-order mark before the first column's name."""
    bom = tmp_path / "bom.csv"
    bom.write_text("\ufeff" + (files / "ratings.csv").read_text(), encoding="utf-8")
    assert main(["recsys", "train", "--ratings", str(bom), "--method", "popularity", "--out", str(tmp_path / "m")]) == 0
    mine = tmp_path / "mine.csv"
    mine.write_text("\ufeffitem,rating\n3,5\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["recommend", str(tmp_path / "m"), "--ratings", str(mine), "-n", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["items"] == 1


def test_topn_bad_inputs(files, auto_run, tmp_path, capsys):
    capsys.readouterr()
    empty = tmp_path / "empty.csv"
    empty.write_text("item,rating\n")
    never = tmp_path / "never.csv"
    never.write_text("item,rating\nMovie 39,4\n")
    no_rating = tmp_path / "clicks.csv"
    no_rating.write_text("user,item\na,1\nb,2\n")
    out_of_scale = tmp_path / "scale.csv"
    out_of_scale.write_text("user,item,rating\na,1,4\nb,2,9\n")
    mine = tmp_path / "mine.csv"
    mine.write_text("item,rating\n3,5\nnope,2\n")
    cases = [
        (["recommend", str(auto_run), "--ratings", str(empty), "--explain"], "explain needs at least one item"),
        (["recommend", str(auto_run), "--ratings", str(mine), "--explain"], "unknown item(s) nope"),
        (
            ["recommend", str(auto_run), "--ratings", str(empty), "-n", "41"],
            "k=41 is larger than the catalogue (40 items)",
        ),
        (["recsys", "ask", str(auto_run), "--n", "41"], "n=41 is larger than the catalogue (40 items)"),
        (["recsys", "ask", str(auto_run), "--n", "2", "--answers", str(never)], "item Movie 39 was never asked"),
        (
            ["recsys", "train", "--ratings", str(no_rating), "--out", str(tmp_path / "a")],
            "needs columns user,item,rating[,timestamp]; missing rating (interactions without ratings: pass implicit=True / --implicit)",
        ),
        (
            [
                "recsys",
                "train",
                "--ratings",
                str(out_of_scale),
                "--scale",
                "1",
                "--scale",
                "5",
                "--out",
                str(tmp_path / "b"),
            ],
            "rating 9 of user b for item 2 is outside the scale 1..5",
        ),
        (
            ["recsys", "train", "--method", "bias", "-p", "lam=5", "--out", str(tmp_path / "c")],
            "lam=5 does not apply to method 'bias'",
        ),
        (["recsys", "train", "--implicit", "--out", str(tmp_path / "d")], "go with --ratings"),
    ]
    for argv, match in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert match in err and err.count("\n") == 1, err
    assert not any((tmp_path / x).exists() for x in "abcd")  # nothing written


def test_implicit_file_trains_and_recommends(files, tmp_path, capsys):
    lines = (files / "ratings.csv").read_text().splitlines()
    clicks = tmp_path / "clicks.csv"
    clicks.write_text(
        "user,item,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, _, t in (line.split(",") for line in lines[1:]))
    )
    out = tmp_path / "implicit"
    assert (
        main(
            [
                "recsys",
                "train",
                "--ratings",
                str(clicks),
                "--implicit",
                "--method",
                "ease",
                "--fold",
                "1",
                "--folds",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["recsys", "eval", str(out), "--shots", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["shots"]["3"]["ndcg10"]["n"] > 0
    mine = tmp_path / "mine.csv"
    mine.write_text("item\n3\n12\n")
    assert main(["recommend", str(out), "--ratings", str(mine), "-n", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["recommendations"]) == 3
    rated = tmp_path / "rated.csv"  # ratings given to a model of clicks: each is an interaction
    rated.write_text("item,rating\n3,5\n12,2\n")
    assert main(["recommend", str(out), "--ratings", str(rated), "-n", "3", "--json"]) == 0
    assert (
        json.loads(capsys.readouterr().out)["recommendations"]
        == json.loads(
            (main(["recommend", str(out), "--ratings", str(mine), "-n", "3", "--json"]), capsys.readouterr().out)[1]
        )["recommendations"]
    )
    first = json.loads((main(["recsys", "ask", str(out), "--n", "1", "--json"]), capsys.readouterr().out)[1])["ask"]
    answers = tmp_path / "answers.csv"
    answers.write_text(f"item,rating\n{first[0]['item']},4\n")
    assert main(["recsys", "ask", str(out), "--n", "1", "--answers", str(answers), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["seen"] == 1
