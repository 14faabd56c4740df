"""scikit-learn conventions for every kshot estimator (FewShotClassifier, FewShotImageClassifier,
FewShotTagger, Recommender): the constructor stores its parameters unchanged, ``get_params`` /
``set_params`` come from the constructor's signature (scikit-learn's ``BaseEstimator``), so
``sklearn.base.clone``, ``GridSearchCV`` and ``cross_val_score`` work; learned state ends in ``_``.

Many parameters belong to some methods only. A subclass lists them in ``method_params``
(parameter -> the methods it applies to); ``check_method_params`` makes a parameter set away from its
default on another method an error that names both, instead of a setting silently ignored.
"""

from __future__ import annotations

import inspect

from sklearn.base import BaseEstimator

from .errors import KshotError


class Estimator(BaseEstimator):
    #: parameter -> methods it applies to (a parameter not listed applies to every method)
    method_params: dict[str, tuple[str, ...]] = {}

    @classmethod
    def param_defaults(cls) -> dict:
        return {
            name: p.default
            for name, p in inspect.signature(cls.__init__).parameters.items()
            if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }

    def set_params(self, **params):
        """Set constructor parameters (scikit-learn style); an unknown name is a one-line KshotError."""
        valid = self._get_param_names()
        for key in params:
            if key not in valid:
                raise KshotError(f"unknown {type(self).__name__} parameter {key!r}; choose from: {', '.join(valid)}")
        return super().set_params(**params)

    def check_method_params(self, names: dict | None = None) -> None:
        """Raise KshotError when a parameter that ``self.method`` does not use differs from its default;
        ``names`` maps a parameter to the name the error should use (a CLI flag)."""
        defaults = self.param_defaults()
        for param, methods in self.method_params.items():
            value = getattr(self, param)
            if self.method not in methods and not self.is_default(param, value, defaults.get(param)):
                shown = (names or {}).get(param, param)
                raise KshotError(
                    f"{shown}={value!r} does not apply to method {self.method!r}; it applies to: {', '.join(methods)}"
                )

    def is_default(self, param: str, value, default) -> bool:
        """Whether ``value`` counts as ``param``'s default (a subclass may compare some values its own way,
        e.g. a duration given as "120" or 120.0)."""
        return _same(value, default)


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - arrays and other values without a plain ==
        return a is b


def check_labels(labels: list, n_items: int, what: str, min_classes: int) -> None:
    """The checks every classifier makes on its training labels: as many as the ``what`` ("texts", "images"),
    each a non-empty string or an integer, at least ``min_classes`` distinct ones."""
    if len(labels) != n_items:
        raise KshotError(f"got {n_items} {what} but {len(labels)} labels")
    bad = [y for y in labels if isinstance(y, bool) or not isinstance(y, (str, int)) or y == ""]
    if bad:
        raise KshotError(f"labels must be non-empty strings or integers, got {bad[0]!r}")
    if len(set(labels)) < min_classes:
        raise KshotError(
            f"the training set has {len(set(labels))} class(es) {sorted(set(map(str, labels)))}; "
            f"a classifier needs at least {min_classes}"
        )
