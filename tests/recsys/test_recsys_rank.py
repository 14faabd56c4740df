"""kshot.recsys top-N: the ranking metrics, the rankers (EASE, item-kNN, RP3beta, iALS, group popularity, the
sequence models and MeLU with a ranking loss), their explanations, the Recommender as a scikit-learn
estimator with method "auto", onboarding, and implicit data; on small synthetic sets made here."""

import copy

import numpy as np
import pytest
import torch
from ratings import interactions
from sklearn.base import clone

from kshot.core.errors import KshotError
from kshot.data.interactions import Interactions, read_interactions
from kshot.recsys.methods import RANKERS, build
from kshot.recsys.methods.ials import _solve_rows
from kshot.recsys.methods.melu import DECISION
from kshot.recsys.methods.neural_rank import masked_softmax_loss
from kshot.recsys.methods.successors import DECAY, successor_counts
from kshot.recsys.protocol import (
    Task,
    default_positive,
    evaluate_tasks,
    item_share,
    make_fold,
    paired,
    summarize,
    task_metrics,
)
from kshot.recsys.recommender import CANDIDATES, Recommender

SMALL = dict(train_steps=60, eval_every=30, meta_batch=16, lr=1e-2)  # a few seconds of training here
IALS = dict(factors=16, confidence=10.0, reg=10.0)


def clusters(n_users=120, n_groups=4, per_group=10, n_popular=8, per_user=24, seed=0, implicit=False) -> Interactions:
    """Users in ``n_groups`` taste groups (their user feature), each interacting mostly with its own block of
    items (liked: rated 4-5) plus a few of ``n_popular`` popular items (rated 2-3): co-occurrence carries the
    taste, popularity does not."""
    rng = np.random.default_rng(seed)
    n_items = n_groups * per_group + n_popular
    users, items, ratings, times = [], [], [], []
    for u in range(n_users):
        g = u % n_groups
        own = rng.choice(np.arange(g * per_group, (g + 1) * per_group), per_group, replace=False)
        pop = rng.choice(np.arange(n_groups * per_group, n_items), n_popular, replace=False)
        chosen = rng.permutation(np.concatenate([own, pop]))[:per_user]
        for t, i in enumerate(chosen):
            users.append(u), items.append(int(i)), times.append(1000 * u + t)
            ratings.append(
                1.0 if implicit else float(rng.integers(4, 6) if i < n_groups * per_group else rng.integers(2, 4))
            )
    return interactions(
        users,
        items,
        ratings,
        times,
        n_items,
        user_features=np.eye(n_groups)[np.arange(n_users) % n_groups],
        user_feature_names=[f"group={g}" for g in range(n_groups)],
        scale=(1.0, 1.0) if implicit else (1, 5),
        name="clusters",
        implicit=implicit,
    ).validate()


@pytest.fixture(scope="module")
def data():
    return clusters()


@pytest.fixture(scope="module")
def fold(data):
    return make_fold(data, 0, n_folds=4, seed=1, shots=(0, 1, 3, 5, 8), n_query=8)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks: one torch thread is faster (and far faster on a busy machine) than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- metrics ---------------------------------------------------------------------------------------------


def test_topn_metrics_match_hand_computed_values():
    task = Task(7, np.array([0, 1]), np.array([5.0, 2.0]), np.array([2, 3, 4, 5]), np.array([5, 4, 2, 5], np.float32))
    scores = np.zeros(30)
    scores[[0, 1]] = 10.0  # the support: never ranked
    scores[[20, 21, 3, 22, 5]] = [9, 8, 7, 6, 5]  # ranks 1-5: 20, 21, 3 (liked), 22, 5 (liked)
    scores[2] = -1.0  # liked, below every unscored item: rank 30 - 2 = 28
    share = np.linspace(0, 1, 30)
    m = task_metrics(scores, task, 2, predicts_ratings=False, item_share=share)
    assert m["top"][:5].tolist() == [20, 21, 3, 22, 5] and len(m["top"]) == 10
    assert m["mrr"] == pytest.approx(1 / 3)
    assert m["recall10"] == pytest.approx(2 / 3) and m["recall20"] == pytest.approx(2 / 3)
    ideal = sum(1 / np.log2(r + 2) for r in range(3))
    assert m["ndcg10"] == pytest.approx((1 / np.log2(4) + 1 / np.log2(6)) / ideal)
    assert m["popularity"] == pytest.approx(share[m["top"]].mean())
    assert np.isnan(m["mae"]) and np.isnan(m["ndcg5"])
    implicit = task_metrics(scores, task, 2, predicts_ratings=False, positive=None)  # every query item counts
    assert implicit["recall10"] == pytest.approx(2 / 4)
    # the places of items with equal scores follow the user's fixed random order, the same every call
    flat = task_metrics(np.zeros(30), task, 2, False)
    assert flat["top"].tolist() == task_metrics(np.zeros(30), task, 2, False)["top"].tolist()
    assert not {0, 1} & set(flat["top"].tolist())


def test_coverage_and_paired_difference():
    a = [{5: {"ndcg10": np.array([0.5, 0.2, np.nan]), "top": np.array([[0, 1], [1, 2], [3, 4]])}}]
    b = [{5: {"ndcg10": np.array([0.1, 0.2, 0.3]), "top": np.array([[0, 1], [0, 1], [0, 1]])}}]
    d = paired(a, b, 5)
    assert d["n"] == 2 and d["diff"] == pytest.approx(0.2) and d["ratio"] == pytest.approx(0.35 / 0.15)
    assert d["ci95"] == pytest.approx(1.96 * np.std([0.4, 0.0], ddof=1) / np.sqrt(2))
    per_fold = [
        {
            5: {
                **{
                    m: np.zeros(3)
                    for m in (
                        "mae",
                        "rmse",
                        "ndcg5",
                        "ndcg5_random",
                        "ndcg10",
                        "recall10",
                        "recall20",
                        "mrr",
                        "popularity",
                    )
                },
                "top": a[0][5]["top"],
            }
        }
    ]
    assert summarize(per_fold, n_items=10)[5]["coverage"]["mean"] == pytest.approx(0.5)


# ---- the rankers -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rankers(fold):
    out = {}
    for name in RANKERS:
        fixed = SMALL if name in ("gru", "sasrec", "melu_rank") else IALS if name == "ials" else {}
        out[name] = build(name, seed=0, **fixed).fit(fold.train, fold.val)
    return out


@pytest.fixture(scope="module")
def ranker_scores(fold, rankers):
    return {name: summarize([evaluate_tasks(m, fold.train, fold.test, (0, 3, 8))]) for name, m in rankers.items()}


def test_rankers_learn_the_taste_that_popularity_misses(ranker_scores):
    s = ranker_scores
    pop = s["popularity"][3]["ndcg10"]["mean"]
    for name in ("ease", "successors", "knn", "rp3beta", "ials", "gru", "sasrec", "melu_rank"):
        assert s[name][3]["ndcg10"]["mean"] > pop + 0.2, name  # the group's block is in the co-occurrences
        assert s[name][3]["mae"]["mean"] is None
    # with no items, only the user's features say the group: group popularity gets it, popularity cannot
    assert s["group_popularity"][0]["ndcg10"]["mean"] > s["popularity"][0]["ndcg10"]["mean"] + 0.2
    for name in ("sasrec", "gru"):  # the sequence models read the user features at K = 0 too
        assert s[name][0]["ndcg10"]["mean"] > s["popularity"][0]["ndcg10"]["mean"] + 0.1, name


def test_ease_is_the_zero_diagonal_ridge_solution(fold):
    m = build("ease", lam=7.0, signal="all").fit(fold.train, tune=False)
    x = m.matrix(fold.train).toarray()
    b = m.arrays_["weights"].astype(np.float64)
    for j in (0, 5, 41):  # column j: ridge regression of item j on every other item
        others = np.arange(x.shape[1]) != j
        a = x[:, others]
        ref = np.linalg.solve(a.T @ a + 7.0 * np.eye(a.shape[1]), a.T @ x[:, j])
        np.testing.assert_allclose(b[others, j], ref, rtol=1e-3, atol=1e-5)
        assert b[j, j] == 0


def chains(n_users=90, n_items=12, length=5, seed=0) -> Interactions:
    """Every user walks ``length`` consecutive items of the cycle 0 -> 1 -> ... -> n_items - 1 -> 0 from a
    random start, in that order, all liked: which items come next is in the order, not in the co-occurrence
    (``i`` is seen with ``i - 1`` as often as with ``i + 1``)."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        start = int(rng.integers(n_items))
        for t in range(length):
            users.append(u), items.append((start + t) % n_items)
    return interactions(users, items, np.full(len(users), 5.0), np.arange(len(users)))


def test_successor_counts_by_hand():
    # items x=0, y=1, z=2; user 0: z, x, y in time order (y disliked); user 1: y then z;
    # user 2: x and z in the same second
    data = interactions(
        [0, 0, 0, 1, 1, 2, 2], [0, 1, 2, 1, 2, 0, 2], [5.0, 2.0, 4.0, 5.0, 5.0, 4.0, 5.0], [20, 30, 10, 1, 2, 7, 7]
    )
    liked = data.ratings >= 4
    t = successor_counts(data, liked)
    expected = np.zeros((3, 3))
    expected[2, 0] = 1.0 + 1.0  # user 0: z then x (gap 1; y is not liked, so nothing ends at y); user 2: tied
    expected[1, 2] = 1.0  # user 1: y then z
    expected[0, 2] = 1.0  # user 2: x and z tied, so x -> z as well as z -> x
    np.testing.assert_allclose(t, expected)
    everything = successor_counts(data, np.ones(7, bool))
    assert everything[2, 1] == pytest.approx(2.0**-DECAY) and everything[0, 1] == 1.0  # z .. y two apart
    assert everything[1, 0] == 0.0  # y never comes before x


def test_successor_counts_of_a_long_history_stop_at_the_gap_cap(monkeypatch):
    import kshot.recsys.methods.successors as successors

    monkeypatch.setattr(successors, "MAX_GAP", 7)  # a history of 40 is "long"; blocks of 3 starts
    monkeypatch.setattr(successors, "CHUNK", 25)
    rng = np.random.default_rng(3)
    items, ratings = rng.integers(0, 9, 40), rng.integers(1, 6, 40).astype(float)
    data = interactions(np.zeros(40, int), items, ratings, np.arange(40))
    liked = ratings >= 4
    expected = np.zeros((9, 9))
    for j in range(40):
        for i in range(j + 1, min(j + 8, 40)):
            if liked[i]:
                expected[items[j], items[i]] += (i - j) ** -successors.DECAY
    np.testing.assert_allclose(successors.successor_counts(data, liked), expected)


def test_successors_rank_what_comes_next():
    data = chains()
    ease = build("ease", lam=5.0, blend=0.0).fit(data, tune=False)
    nxt = build("successors", lam=5.0, blend=0.0, mix=4.0).fit(data, tune=False)
    items, ratings = np.array([5]), np.array([5.0])
    e, s = ease.raw_scores(items, ratings, None), nxt.raw_scores(items, ratings, None)
    assert abs(e[6] - e[4]) < 0.1 * abs(e[6])  # EASE cannot tell the next item from the previous one
    assert s[6] > s[4] + 0.5 * abs(s[6]) and s[7] > s[3]  # successors can
    assert np.argsort(-nxt.predict_items(items, ratings, None))[0] == 6
    nxt.params["mix"] = 0.0  # mix 0 is EASE (up to the scale)
    r0 = nxt.raw_scores(items, ratings, None)
    np.testing.assert_allclose(r0 / np.abs(r0).max(), e / np.abs(e).max(), atol=1e-5)


def test_ials_conjugate_gradient_reaches_the_exact_solve(fold):
    m = build("ials", factors=8).fit(fold.train, tune=False)
    x = m.matrix(fold.train)
    y = m.arrays_["item_factors"].astype(np.float64)
    u = _solve_rows(x, y, 10.0, 10.0, np.zeros((x.shape[0], 8)), steps=30)
    for r in (0, 3, 50):
        cols = x[r].indices
        exact = np.linalg.solve(y.T @ y + 10.0 * np.eye(8) + 10.0 * y[cols].T @ y[cols], 11.0 * y[cols].sum(0))
        np.testing.assert_allclose(u[r], exact, rtol=1e-6, atol=1e-8)
    # the new user's fold-in is that solve with the fold-in regularisation
    m.params.update(fold_in_reg=10.0, disliked=1.0)
    cols = x[3].indices
    scores = m.raw_scores(cols, np.full(len(cols), 5.0), None)
    exact = np.linalg.solve(y.T @ y + 10.0 * np.eye(8) + 10.0 * y[cols].T @ y[cols], 11.0 * y[cols].sum(0))
    np.testing.assert_allclose(scores, y @ exact, rtol=1e-6)


def test_tuning_cross_validates_on_the_warm_users():
    fold = make_fold(clusters(per_group=12, n_popular=10, per_user=22), 0, n_folds=4, seed=1)  # 22 >= 10 + 10 each
    m = build("knn")
    m.n_items, m.scale = fold.train.n_items, fold.train.scale
    parts = m.cross_validation(fold.train)
    assert len(parts) == 3
    held = [{t.user for t in tasks} for _, _, tasks in parts]
    warm = set(np.unique(fold.train.users).tolist())
    assert set().union(*held) == warm and sum(map(len, held)) == len(warm)  # every warm user once
    for (twin, data, tasks), users in zip(parts, held):
        assert twin.params is m.params and not users & set(np.unique(data.users).tolist())
        assert all(len(t.support_items) == 10 and len(t.query_items) == 10 for t in tasks)
    tuned = build("knn").fit(fold.train, fold.val)
    assert len(tuned.tuning_) > 5 and tuned.val_error_ == min(t["val"] for t in tuned.tuning_)


def test_blend_with_popularity_where_support_is_thin(fold, rankers):
    m = copy.copy(rankers["ease"])  # its own params and arrays: the shared fixture stays as it was
    m.params = {**m.params, "blend": 0.0}
    prior = m.arrays_["prior"] / m.arrays_["prior"].max()
    np.testing.assert_allclose(m.predict_items(np.array([], int), np.array([]), None), 1e-6 * prior)
    one = m.predict_items(np.array([0]), np.array([5.0]), None)
    m.params["blend"] = 2.0
    blended = m.predict_items(np.array([0]), np.array([5.0]), None)
    np.testing.assert_allclose(blended - one, 2.0 / 2**4 * prior)  # blend / (1 + K)^4, K = 1
    three = np.array([0, 1, 2]), np.array([5.0, 5.0, 5.0])
    m.params["blend"] = 0.0
    base = m.predict_items(*three, None)
    m.params["blend"] = 2.0
    np.testing.assert_allclose(m.predict_items(*three, None) - base, 2.0 / 4**4 * prior, atol=1e-12)
    m.arrays_ = {k: v for k, v in m.arrays_.items() if k != "decay"}  # a model saved with the square
    np.testing.assert_allclose(m.predict_items(np.array([0]), np.array([5.0]), None) - one, 0.5 * prior)
    assert "decay" in rankers["ease"].arrays_ and rankers["ease"].params is not m.params


@pytest.mark.parametrize("name", ["ease", "successors", "knn", "rp3beta", "ials", "sasrec"])
def test_contributions_explain_the_score(rankers, name):
    m = rankers[name]
    items, ratings = np.array([0, 1, 2, 45]), np.array([5.0, 4.0, 5.0, 2.0])
    targets = np.array([3, 4, 12, 30])
    c = m.contributions(items, ratings, np.zeros(4), targets)
    assert c.shape == (4, 4)
    if m.linear:  # exact: the terms add up to the raw score
        np.testing.assert_allclose(c.sum(1), m.raw_scores(items, ratings, None)[targets], rtol=1e-5, atol=1e-7)
    # items 0-2 (one group) explain an item of their group more than the popular item 45 does
    assert c[0, :3].max() > c[0, 3]


def test_masked_softmax_loss_by_hand():
    logits = torch.tensor([[1.0, 2.0, 3.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    targets = torch.tensor([[0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    support = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    z = np.log(np.exp(1) + np.exp(2) + np.exp(0))  # item 2 (support) left out of the softmax
    expected = -((2 - z) + (0 - z)) / 2  # the task without targets does not count
    assert masked_softmax_loss(logits, targets, support).item() == pytest.approx(expected, rel=1e-6)


def test_melu_rank_meta_gradient_equals_unrolled_autograd(fold):
    m = build("melu_rank", seed=2, train_steps=1, meta_batch=4, emb=4, hidden=8).fit(fold.train, tune=False)
    m.net.double()
    m.inner_steps, m.inner_lr = 2, 0.3
    for p in m.net.parameters():
        torch.nn.init.normal_(p, std=0.3)
    rows = [r for r in fold.train.user_rows() if len(r) >= 2]
    batch = m.sample_tasks(rows, fold.train, np.random.default_rng(0))
    s_i, s_r, s_m, targets, support, uf = (x.double() if x.is_floating_point() else x for x in batch)
    s_w = m.support_weights(s_r.float()).double()
    grads, _ = m.meta_gradients((s_i, s_w, s_m, targets, support, uf))
    theta = {n: p.detach().clone().requires_grad_(True) for n, p in m.net.named_parameters()}
    total = 0.0
    for t in range(4):
        fast = dict(theta)
        for _ in range(2):
            logits = m.net.rate(fast, m.all_items_, uf[t])
            target = torch.zeros(logits.shape[-1], dtype=torch.float64).index_add(0, s_i[t], s_w[t] * s_m[t])
            loss = -(target * torch.log_softmax(logits, -1)).sum() / target.sum().clamp(min=1.0)
            g = torch.autograd.grad(loss, [fast[n] for n in DECISION], create_graph=True)
            fast.update({n: fast[n] - 0.3 * gi for n, gi in zip(DECISION, g)})
        total = total + masked_softmax_loss(m.net.rate(fast, m.all_items_, uf[t]), targets[t], support[t]) / 4
    ref = dict(zip(theta, torch.autograd.grad(total, list(theta.values()))))
    for n in ref:
        torch.testing.assert_close(grads[n], ref[n], rtol=1e-8, atol=1e-10)


# ---- the Recommender -------------------------------------------------------------------------------------


def test_recommender_follows_scikit_learn_conventions(fold):
    rec = Recommender("ease", lam=50.0, blend=0.3)
    assert rec.get_params()["lam"] == 50.0 and rec.get_params()["method"] == "ease"
    twin = clone(rec)
    assert twin is not rec and twin.get_params() == rec.get_params() and not hasattr(twin, "method_")
    rec.set_params(lam=80.0).fit(fold.train, fold.val)
    assert rec.method_.params["lam"] == 80.0 and rec.method_.params["blend"] == 0.3  # given: not tuned
    assert not hasattr(clone(rec), "method_")
    for params, match in [
        (dict(method="bias", lam=3.0), r"lam=3.0 does not apply to method 'bias'; it applies to: ease"),
        (dict(method="knn", factors=8), "factors=8 does not apply to method 'knn'"),
        (dict(method="ease", params={"nope": 1}), "unknown parameter 'nope' for method 'ease'"),
        (dict(method="auto", candidates=("bias",)), "unknown candidate 'bias'"),
        (dict(method="auto", candidates=("knn",), lam=5.0), "unknown parameter 'lam'"),
        (dict(method="nope"), "unknown method 'nope'"),
    ]:
        with pytest.raises(KshotError, match=match):
            Recommender(**params).fit(fold.train, fold.val)


def test_auto_picks_the_best_ranker_on_validation_users(tmp_path, fold):
    rec = Recommender(seed=1, factors=16).fit(fold.train, fold.val)  # fewer iALS fits to tune
    assert set(rec.selection_) == set(CANDIDATES)
    assert rec.chosen_ == max(rec.selection_, key=rec.selection_.get)
    assert rec.selection_[rec.chosen_] == pytest.approx(1 - rec.method_.val_score(fold.train, fold.val))
    rec.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.chosen_ == rec.chosen_ and loaded.get_params() == rec.get_params()
    user = {"0": 5, "1": 4, "44": 2}
    assert loaded.recommend(user, k=5, explain=True) == rec.recommend(user, k=5, explain=True)


def test_recommend_excludes_seen_and_explains(fold, data):
    rec = Recommender("ease", lam=20.0).fit(fold.train, fold.val)
    top = rec.recommend(["0", "Item 1", "2"], k=5, explain=True, exclude=["3"])
    assert len(top) == 5 and not {r["item"] for r in top} & {"0", "1", "2", "3"}
    assert all(int(r["item"]) < 10 for r in top)  # the rest of group 0's block
    for r in top:
        assert r["because"] and {b["item"] for b in r["because"]} <= {"0", "1", "2"}
        assert sum(b["share"] for b in r["because"]) == pytest.approx(1.0)
        assert [b["share"] for b in r["because"]] == sorted((b["share"] for b in r["because"]), reverse=True)
    assert [r["item"] for r in rec.recommend({}, k=3)] == [r["item"] for r in rec.recommend([], k=3)]
    with pytest.raises(KshotError, match="explain needs at least one item"):
        rec.recommend([], explain=True)
    with pytest.raises(KshotError, match=f"k={data.n_items + 1} is larger than the catalogue"):
        rec.recommend(["0"], k=data.n_items + 1)
    with pytest.raises(KshotError, match=r"unknown item\(s\) nope, 999"):
        rec.recommend(["0", "nope", "999"])
    with pytest.raises(KshotError, match="rating 7 for item 0 is outside the scale 1..5"):
        rec.recommend({"0": 7})


# ---- onboarding ------------------------------------------------------------------------------------------


def test_onboarding_asks_answers_and_adapts(fold):
    rec = Recommender("ease", lam=20.0).fit(fold.train, fold.val)
    session = rec.onboard()
    first = session.ask(3)
    assert len(first) == 3 and session.ask(2) == first[:2]  # unanswered questions come back first
    assert [r["item"] for r in first] == [r["item"] for r in rec.onboard("popular").ask(3)]  # no answer: popular
    with pytest.raises(KshotError, match="item 0 was never asked"):
        session.answer("0", 5)
    session.answer(first[0]["item"], "not seen")
    with pytest.raises(KshotError, match="already answered .not seen."):
        session.answer(first[0]["item"], 3)
    with pytest.raises(KshotError, match="answer 9 for item .* is neither a rating in 1..5 nor 'not seen'"):
        session.answer(first[1]["item"], 9)
    # a user who liked two items of group 1 (items 10-19) is asked about the rest of that block next
    adaptive = rec.onboard()
    adaptive.asked.extend([10, 11])
    adaptive.answer("10", 5)
    adaptive.answer("11", 4)
    nxt = adaptive.ask(3)
    assert all(10 <= int(r["item"]) < 20 for r in nxt)
    recs = adaptive.recommend(3)
    assert not {"10", "11"} & {r["item"] for r in recs} and all(10 <= int(r["item"]) < 20 for r in recs)
    with pytest.raises(KshotError, match="n=49 is larger than the catalogue .48 items"):
        adaptive.ask(49)
    with pytest.raises(KshotError, match="unknown strategy"):
        rec.onboard("clever")
    assert len({r["item"] for r in rec.onboard("random").ask(48)}) == 48


# ---- implicit data ---------------------------------------------------------------------------------------


def test_implicit_interactions_end_to_end(tmp_path):
    d = clusters(implicit=True)
    assert default_positive(d) is None and d.scale == (1.0, 1.0)
    path = tmp_path / "clicks.csv"
    path.write_text(
        "user,item,timestamp\n"
        + "".join(f"{d.user_ids[u]},{d.item_ids[i]},{t}\n" for u, i, t in zip(d.users, d.items, d.timestamps))
        + f"{d.user_ids[0]},{d.item_ids[d.items[0]]},99999\n"
    )  # a repeated click: one interaction
    read = read_interactions(path, implicit=True)
    assert read.implicit and len(read) == len(d) and set(read.ratings.tolist()) == {1.0}
    with pytest.raises(KshotError, match="missing rating .interactions without ratings: pass implicit=True"):
        read_interactions(path)
    f = make_fold(read, 0, n_folds=4, seed=1, shots=(0, 3), n_query=8)
    m = build("ease", lam=20.0).fit(f.train, tune=False)
    res = evaluate_tasks(m, f.train, f.test, (3,))
    t = f.test[0]
    np.testing.assert_allclose(
        res[3]["recall10"][0],
        task_metrics(m.predict_items(*t.support(3), None), t, 3, False, positive=None)["recall10"],
    )
    assert np.nanmean(res[3]["ndcg10"]) > 0.5
    share = item_share(f.train)
    assert share.max() <= 1 and share.sum() > 0


@pytest.mark.parametrize("name", ["gru", "sasrec"])
def test_sequence_rankers_read_a_long_history_from_its_latest_items(rankers, fold, name):
    """More items than the longest training prefix (10): the latest 10 are read, no crash, and the
    earlier items change nothing."""
    m = rankers[name]
    items = np.arange(14)
    ratings = np.full(14, 4.0, np.float32)
    uf = fold.train.user_features[0]
    long = m.predict_items(items, ratings, uf)
    latest = m.predict_items(items[-10:], ratings[-10:], uf)
    # the prior's weight depends on K (14 vs 10 items), the network's part is the same
    np.testing.assert_allclose(m.raw_scores(items, ratings, uf), m.raw_scores(items[-10:], ratings[-10:], uf))
    assert long.shape == latest.shape == (fold.train.n_items,) and np.isfinite(long).all()
