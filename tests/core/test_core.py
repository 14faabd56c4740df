"""kshot.core pieces on their own: the estimator conventions, atomic writes' permissions, stats."""

import os
import stat

import numpy as np
import pytest
from sklearn.base import clone

from kshot.core.errors import KshotError
from kshot.core.estimator import Estimator
from kshot.core.io import atomic_write
from kshot.core.stats import bootstrap_weights, ci95, percentile_interval


class Toy(Estimator):
    method_params = {"steps": ("tuned",), "k": ("knn", "tuned")}

    def __init__(self, method="plain", steps=10, k=0, seed=0):
        self.method, self.steps, self.k, self.seed = method, steps, k, seed


def test_estimator_params_come_from_the_signature_and_clone_works():
    t = Toy(method="tuned", steps=5)
    assert t.get_params() == {"method": "tuned", "steps": 5, "k": 0, "seed": 0}
    c = clone(t.set_params(seed=3))
    assert c is not t and c.get_params() == {"method": "tuned", "steps": 5, "k": 0, "seed": 3}
    t.check_method_params()


def test_a_parameter_of_another_method_is_an_error_naming_both():
    with pytest.raises(KshotError, match=r"steps=5 does not apply to method 'plain'; it applies to: tuned"):
        Toy(steps=5).check_method_params()
    with pytest.raises(KshotError, match=r"--k=3 does not apply to method 'plain'; it applies to: knn, tuned"):
        Toy(k=3).check_method_params(names={"k": "--k"})
    Toy(method="knn", k=3).check_method_params()


def test_atomic_write_gives_the_permissions_the_umask_allows(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "a.txt", "w") as f:
            f.write("x")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
        os.umask(0o077)
        with atomic_write(tmp_path / "b.txt", "w") as f:
            f.write("x")
        assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600
    finally:
        os.umask(old)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_atomic_write_leaves_the_old_file_when_the_block_fails(tmp_path):
    (tmp_path / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path / "a.txt", "w") as f:
            f.write("new")
            raise RuntimeError("boom")
    assert (tmp_path / "a.txt").read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_intervals():
    assert ci95([1.0]) != ci95([1.0])  # nan: one value has no interval
    assert ci95([0.0, 1.0, 0.0, 1.0]) == pytest.approx(1.96 * np.std([0, 1, 0, 1], ddof=1) / 2)
    w = bootstrap_weights(50, n_boot=200, seed=1)
    assert w.shape == (200, 50) and (w.sum(1) == 50).all()
    assert np.array_equal(w, bootstrap_weights(50, n_boot=200, seed=1))
    lo, hi = percentile_interval(w @ np.r_[np.ones(25), np.zeros(25)] / 50)
    assert lo < 0.5 < hi
