"""kshot.recsys: protocol, metrics, methods, the MeLU meta-gradient and the Recommender API, on a small
synthetic interaction set made here (MovieLens itself only in test_recsys_data.py, from KSHOT_DATA)."""

import itertools

import numpy as np
import pytest
import torch
from ratings import synthetic
from sklearn.metrics import ndcg_score

from kshot.core.errors import KshotError
from kshot.recsys.methods import METHODS, build
from kshot.recsys.methods.melu import DECISION
from kshot.recsys.methods.neural import masked_mse
from kshot.recsys.protocol import METRICS, Task, evaluate_tasks, make_fold, random_ndcg, summarize, task_metrics
from kshot.recsys.recommender import Recommender

SMALL = dict(train_steps=20, eval_every=20, meta_batch=8)  # a few seconds of training on the toy data
NEURAL = {
    "melu": dict(SMALL, test_steps=2, test_lr=0.1),
    "attention": SMALL,
    "finetune": dict(SMALL, test_steps=5, test_lr=0.05),
    "gru": SMALL,
    "sasrec": SMALL,
    "melu_rank": dict(SMALL, test_steps=1, test_lr=0.5),
}


@pytest.fixture(scope="module")
def data():
    return synthetic()


@pytest.fixture(scope="module")
def fold(data):
    return make_fold(data, 0, n_folds=4, seed=3)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks: one torch thread is faster (and far faster on a busy machine) than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- protocol --------------------------------------------------------------------------------------------


def test_folds_partition_users_and_tasks_follow_time(data):
    folds = [make_fold(data, f, n_folds=4, seed=3) for f in range(4)]
    tests = [{t.user for t in f.test} for f in folds]
    assert set().union(*tests) == set(range(data.n_users))  # every user (all have 24 >= 20) tested once
    assert sum(map(len, tests)) == data.n_users
    for f, test in zip(folds, tests):
        val = {t.user for t in f.val}
        assert not val & test and len(val) == round(0.1 * (data.n_users - len(test)))
        assert not set(f.train.users.tolist()) & (val | test)
        assert len(f.train) == len(data) - 24 * len(val | test)
    rows = data.user_rows()
    task = folds[0].test[0]
    r = rows[task.user]
    assert np.all(np.diff(data.timestamps[r]) >= 0)
    np.testing.assert_array_equal(task.support_items, data.items[r[:10]])
    np.testing.assert_array_equal(task.query_items, data.items[r[-10:]])
    assert task.support(3)[0].tolist() == data.items[r[:3]].tolist()
    with pytest.raises(KshotError, match="K=11 is larger"):
        task.support(11)
    again = make_fold(data, 0, n_folds=4, seed=3)  # seeded: the same tasks
    assert [t.user for t in again.test] == [t.user for t in folds[0].test]


def test_item_and_both_cold_folds(data):
    item = make_fold(data, 1, n_folds=5, seed=0, mode="item")
    counts = np.bincount(data.items, minlength=data.n_items)
    eligible = int((counts >= 11).sum())
    assert abs(len(item.test) - eligible / 5) <= 1  # 20% of the eligible items are held out
    held = {t.user for t in item.test}  # tasks index the transposed matrix: task.user is an item
    assert not set(item.train.users.tolist()) & held and item.train.n_users == data.n_items
    for t in item.test:
        assert 1 <= len(t.query_items) <= 10 and len(t.support_items) == 10
    both = make_fold(data, 0, n_folds=5, seed=0, mode="both", shots=(0, 1, 3))
    test_users = {t.user for t in both.test}
    test_items = set(np.concatenate([np.r_[t.support_items, t.query_items] for t in both.test]).tolist())
    pairs = set(zip(both.train.users.tolist(), both.train.items.tolist()))
    assert test_users and not any(u in test_users or i in test_items for u, i in pairs)
    with pytest.raises(KshotError, match="mode"):
        make_fold(data, 0, mode="users")
    with pytest.raises(KshotError, match="fold must be"):
        make_fold(data, 5, n_folds=5)
    with pytest.raises(KshotError, match="only 0 users"):
        make_fold(data, 0, shots=(0, 30))


# ---- metrics ---------------------------------------------------------------------------------------------


def test_metrics_match_hand_computed_values():
    query = np.arange(10)
    ratings = np.array([5, 4, 3, 2, 1, 5, 4, 1, 2, 3], np.float32)
    task = Task(0, np.array([10, 11]), np.array([4.0, 2.0]), query, ratings)
    scores = np.zeros(30)
    err = np.array([0.5, -0.5, 1.2, 0.1, 0.05, -1.1, 0.3, 0.2, -0.1, 0.15])  # no ties among the scores
    scores[:10] = ratings + err
    scores[10] = 9.0  # a support item: never a candidate
    scores[20] = 8.0  # an unrated item above every positive
    m = task_metrics(scores, task, k=2)
    assert m["mae"] == pytest.approx(np.abs(err).mean()) and m["rmse"] == pytest.approx(np.sqrt((err**2).mean()))
    order = np.argsort(-scores[:10], kind="stable")
    dcg = sum(ratings[i] / np.log2(r + 2) for r, i in enumerate(order[:5]))
    idcg = sum(g / np.log2(r + 2) for r, g in enumerate(np.sort(ratings)[::-1][:5]))
    assert m["ndcg5"] == pytest.approx(dcg / idcg)
    assert m["ndcg5"] == pytest.approx(ndcg_score(ratings[None], scores[None, :10], k=5))
    # catalogue ranking without item 10 (support): 20, then query items by score; positives rated >= 4
    positives = {0, 1, 5, 6}
    top = [20] + [int(i) for i in order][:9]
    hits = [i in positives for i in top]
    assert m["recall10"] == pytest.approx(sum(hits) / 4)
    ideal = sum(1 / np.log2(r + 2) for r in range(4))
    assert m["ndcg10"] == pytest.approx(sum(h / np.log2(r + 2) for r, h in enumerate(hits)) / ideal)
    assert np.isnan(task_metrics(scores, task, 0, predicts_ratings=False)["mae"])
    no_pos = Task(1, np.array([], int), np.array([]), query, np.full(10, 2.0, np.float32))
    assert np.isnan(task_metrics(scores, no_pos, 0)["ndcg10"])  # no positive: left out


def test_random_ndcg_is_the_mean_over_all_orders():
    gains = np.array([5.0, 4, 4, 2, 1, 3])
    perms = list(itertools.permutations(range(6)))
    brute = np.mean([ndcg_score(gains[None], -np.argsort(p)[None].astype(float), k=5) for p in perms])
    assert random_ndcg(gains, 5) == pytest.approx(brute)
    # a constant predictor (all ties) scores exactly the random value under scikit-learn's tie averaging
    assert ndcg_score(gains[None], np.zeros((1, 6)), k=5) == pytest.approx(brute)


def test_summarize_over_users_and_folds():
    values = {"mae": [1, 2], "rmse": [1, 2], "recall10": [np.nan, 1], "ndcg10": [0, 1]}
    per_fold = [
        {1: {m: np.array(values.get(m, [1, 1]), float) for m in METRICS}},
        {1: {m: np.array([3.0]) for m in METRICS}},
    ]
    s = summarize(per_fold)[1]
    assert s["mae"]["mean"] == pytest.approx(2.0) and s["mae"]["n"] == 3
    assert s["mae"]["ci95"] == pytest.approx(1.96 * 1.0 / np.sqrt(3))
    assert s["mae"]["fold_mean"] == pytest.approx((1.5 + 3) / 2) and s["mae"]["folds"] == 2
    assert s["recall10"]["n"] == 2  # the NaN (no positive) is left out


# ---- methods ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scores(fold):
    out, fitted = {}, {}
    for name in METHODS:
        m = build(name, seed=0, **NEURAL.get(name, {})).fit(fold.train, fold.val)
        fitted[name] = m
        out[name] = summarize([evaluate_tasks(m, fold.train, fold.test, (0, 10))])
    return out, fitted


def test_every_method_runs_and_beats_the_trivial_ones(scores):
    s, fitted = scores
    mean_mae = s["mean"][10]["mae"]["mean"]
    for name, m in fitted.items():
        if m.predicts_ratings:
            mae = s[name][10]["mae"]["mean"]
            assert np.isfinite(mae) and mae < mean_mae + 0.02, name
        else:
            assert s[name][10]["mae"]["mean"] is None
    for name in ("bias", "mf", "itemknn", "melu", "finetune", "attention"):
        assert s[name][10]["mae"]["mean"] < mean_mae - 0.05, name  # the taste signal is strong here
    assert s["bias"][10]["mae"]["mean"] < s["bias"][0]["mae"]["mean"]  # support ratings help
    assert s["popularity"][10]["ndcg10"]["mean"] > s["random"][10]["ndcg10"]["mean"] + 0.05
    assert s["bias"][10]["ndcg5"]["mean"] > s["bias"][10]["ndcg5_random"]["mean"]


def test_tuning_uses_validation_and_fixed_settings_stay(fold):
    m = build("bias", user_damping=3.0).fit(fold.train, fold.val)
    assert m.params["user_damping"] == 3.0 and len(m.tuning_) > 1
    assert all(t["user_damping"] == 3.0 for t in m.tuning_)
    with pytest.raises(KshotError, match="unknown parameter 'damp'"):
        build("bias", damp=1)
    with pytest.raises(KshotError, match="unknown method"):
        build("melu2")


def unrolled_meta_gradient(m, batch, first_order=False):
    """MeLU's meta-gradient by an explicitly unrolled inner loop differentiated with torch.autograd."""
    theta = {n: p.detach().clone().requires_grad_(True) for n, p in m.net.named_parameters()}
    T = batch[0].shape[0]
    total = 0.0
    for t in range(T):
        s_i, s_r, s_m, q_i, q_r, q_m, uf = (x[t] for x in batch)
        fast = dict(theta)
        for _ in range(m.inner_steps):
            loss = masked_mse(m.net.rate(fast, s_i, uf), s_r, s_m)
            g = torch.autograd.grad(loss, [fast[n] for n in DECISION], create_graph=not first_order)
            fast.update({n: fast[n] - m.inner_lr * gi for n, gi in zip(DECISION, g)})
        total = total + masked_mse(m.net.rate(fast, q_i, uf), q_r, q_m) / T
    return dict(zip(theta, torch.autograd.grad(total, list(theta.values()))))


def test_melu_second_order_meta_gradient_equals_unrolled_autograd(fold):
    m = build("melu", seed=1, train_steps=1, meta_batch=6, inner_steps=2, inner_lr=0.3).fit(fold.train, tune=False)
    m.net.double()
    for p in m.net.parameters():  # non-zero output layer, so second-order terms are not trivially zero
        torch.nn.init.normal_(p, std=0.3)
    rows = [r for r in fold.train.user_rows() if len(r) >= 2]
    batch = m.sample_tasks(rows, fold.train, np.random.default_rng(0))
    batch = tuple(x.double() if x.is_floating_point() else x for x in batch)
    assert batch[2].sum(1).min() < batch[2].sum(1).max()  # supports of different sizes in one batch
    grads, _ = m.meta_gradients(batch)
    ref = unrolled_meta_gradient(m, batch)
    first = unrolled_meta_gradient(m, batch, first_order=True)
    for n in ref:
        torch.testing.assert_close(grads[n], ref[n], rtol=1e-9, atol=1e-11)
    assert any(not torch.allclose(ref[n], first[n], atol=1e-6) for n in ref)  # the second order matters


# ---- the Recommender API ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method",
    [
        "bias",
        "demographic",
        "mf",
        "itemknn",
        "popularity",
        "melu",
        "attention",
        "ease",
        "ials",
        "group_popularity",
        "sasrec",
        "melu_rank",
    ],
)
def test_save_load_round_trip_predicts_the_same(tmp_path, fold, method):
    rec = Recommender(method, seed=0, params=NEURAL.get(method)).fit(fold.train, fold.val)
    user = {"3": 5, "Movie 7": 2, "11": 4.0}
    items = ["0", "1", "2", "40", "Movie 9"]
    before = rec.predict(user, items, user_features=[1, 0])
    rec.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.json", "model.safetensors"]
    loaded = Recommender.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(user, items, user_features=[1, 0]), before)
    assert loaded.recommend(user, k=5) == rec.recommend(user, k=5)


def test_recommend_and_bad_input(fold, data):
    rec = Recommender("itemknn").fit(fold.train, fold.val)
    user = {"0": 5, "1": 4, "2": 1}
    top = rec.recommend(user, k=5)
    assert len(top) == 5 and not {r["item"] for r in top} & set(user)
    assert top[0]["title"] == f"Movie {top[0]['item']}"
    assert [r["score"] for r in top] == sorted((r["score"] for r in top), reverse=True)
    assert len(rec.recommend(user, k=data.n_items, exclude_rated=True)) == data.n_items - 3
    with pytest.raises(KshotError, match=f"k={data.n_items + 1} is larger than the catalogue .{data.n_items} items"):
        rec.recommend(user, k=data.n_items + 1)
    assert rec.predict(user, ["0"]).shape == (1,)
    with pytest.raises(KshotError, match="unknown item.*nope"):
        rec.recommend({"nope": 3})
    with pytest.raises(KshotError, match="rating 6 for item 0 is outside the scale 1..5"):
        rec.recommend({"0": 6})
    with pytest.raises(KshotError, match="k must be"):
        rec.recommend(user, k=0)
    with pytest.raises(KshotError, match="user_features has 3 values"):
        rec.predict(user, ["0"], user_features=[1, 2, 3])
    with pytest.raises(KshotError, match="not fitted"):
        Recommender("bias").recommend(user)
