"""FewShotClassifier: few-shot text classification with scikit-learn conventions.

    clf = FewShotClassifier(method="logistic").fit(texts, labels)
    clf.predict(["where is my card?"], reject_below=0.3)

Methods (the encoder is frozen unless stated):

* ``auto``        the default: the recipe is chosen from the data within ``time_budget`` seconds
                  (kshot/text/auto.py): contrastive fine-tuning when enough steps fit, else the frozen
                  encoder; label names as examples when they are words; the head's C by cross-validation;
* ``prototype``   nearest class mean, cosine;
* ``logistic``    logistic-regression head;
* ``setfit``      contrastive fine-tuning of the encoder on same/different-class pairs, then a logistic head;
* ``zeroshot``    prototypes from the label names alone ("This text is about {label}");
* ``label_prior`` few-shot prototypes blended with the label-name prototype (``prior_weight`` examples);
* ``finetune``    full fine-tuning of the encoder with a linear head.

``label_examples=True`` adds each class's label text ("This text is about card arrival") as one more
training example of that class to the methods that learn from examples (logistic, setfit, finetune);
it helps when the labels are meaningful words, most at 1 shot.

``fit(texts, labels, unlabeled=pool)`` adds self-training (kshot/text/selftrain.py): the head labels
the unlabelled ``pool``, the ``pseudo_per_class`` most confident texts of each class join the training
set over ``self_training_rounds`` rounds (after the contrastive fine-tuning, for ``setfit``; not for
``finetune``).

``knn=k`` (``logistic`` and ``setfit``) blends the head's probabilities with a vote of the ``k`` training
rows nearest to each query (``knn_weight`` of the mix; kshot/core/heads.py). It pays after self-training,
when those rows include the pseudo-labelled pool; it changes predictions, not the fit.

A scikit-learn estimator: ``get_params``/``set_params`` follow the constructor's signature, so
``sklearn.base.clone``, ``GridSearchCV`` and ``cross_val_score`` work (e.g. a grid over ``C`` of
``method="logistic"``). A method-specific parameter (``APPLIES``) set away from its default for a method
it does not apply to (``C`` with ``prototype``, ``time_budget`` with ``logistic``) is an error when ``fit``
runs, not silently ignored.

Texts longer than the encoder's window (256 word pieces for MiniLM: news articles, e-mails) are read in
up to ``windows`` (4) consecutive windows and embedded as the mean of the windows' embeddings, for every
method, at fit and predict time; fine-tuning reads each training text's first window. ``windows=1``
truncates, as models saved before this setting did (they load with ``windows=1``).

``predict_proba`` columns follow ``classes_``; ``predict`` is always their argmax (or ``reject_label``
when ``reject_below`` is given and the best probability is under it). ``save``/``load`` write
safetensors + JSON only, fine-tuned encoder weights included.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.base import ClassifierMixin

from ..core.device import load_device
from ..core.errors import KshotError, check_choice, check_positive_int
from ..core.estimator import Estimator, check_labels
from ..core.heads import HEADS, LogisticHead, PrototypeHead, decide
from ..core.model_format import load_model, save_model
from . import auto
from .contrastive import LOSSES, contrastive_finetune
from .encoder import DEFAULT_MODEL, SentenceEncoder, check_device
from .finetune import full_finetune
from .labels import DEFAULT_TEMPLATE, label_embeddings, label_text
from .selftrain import self_train

METHODS = ("auto", "prototype", "logistic", "setfit", "zeroshot", "label_prior", "finetune")
FROZEN = ("prototype", "logistic", "zeroshot", "label_prior")
KIND = "text-classifier"
WINDOWS = 4  # a long text: up to this many windows of the encoder's length, their embeddings averaged


def saved_windows(params: dict) -> int:
    """The ``windows`` of a saved model's parameters: 1 (truncation, as it was fitted) for a model saved
    before the setting existed."""
    return params.get("windows", 1)


_NOT = lambda *skip: tuple(m for m in METHODS if m not in skip)  # noqa: E731
# the methods each method-specific parameter applies to; the others (encoder, method, scale, reject_label,
# seed, device, progress) apply to every method. Setting one away from its default for another method is an
# error (check_params), not silently ignored.
APPLIES = {
    "C": ("logistic", "setfit"),  # auto chooses C itself, by cross-validation
    "steps": ("setfit", "finetune"),
    "batch_size": ("setfit", "finetune"),
    "lr": ("auto", "setfit", "finetune"),
    "loss": ("setfit",),
    "temperature": ("auto", "setfit"),
    "prior_weight": ("label_prior",),
    "label_examples": ("logistic", "setfit", "finetune"),  # auto decides from the label names
    "label_template": _NOT("prototype"),
    "label_descriptions": _NOT("prototype"),
    "pseudo_per_class": _NOT("finetune"),
    "self_training_rounds": _NOT("finetune"),
    "knn": ("auto", "logistic", "setfit"),
    "knn_weight": ("auto", "logistic", "setfit"),
    "time_budget": ("auto",),
}


def check_texts(texts, what: str = "texts") -> list[str]:
    if isinstance(texts, str):
        raise KshotError(f"{what} must be a list of strings, got a single string {texts[:40]!r}")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise KshotError(f"{what}[{i}] must be a string, got {type(t).__name__} {t!r}")
        if not t.strip():
            raise KshotError(f"{what}[{i}] is empty; every text needs some words")
    return texts


def _plain(label):
    return label.item() if isinstance(label, np.generic) else label


class FewShotClassifier(ClassifierMixin, Estimator):
    """Classify texts from a few labelled examples per class (see the module docstring).

    A scikit-learn estimator (``kshot.core.estimator``): ``get_params``/``set_params`` come from this
    constructor's signature, so ``sklearn.base.clone``, ``GridSearchCV`` and ``cross_val_score`` work; the
    parameters are stored as given and checked when ``fit`` runs (``check_params``)."""

    method_params = APPLIES

    def __init__(
        self,
        encoder: str = DEFAULT_MODEL,
        method: str = "auto",
        *,
        C: float = 10.0,
        scale: float | None = None,
        steps: int = 200,
        batch_size: int = 16,
        lr: float | None = None,
        loss: str = "supcon",
        temperature: float = 0.05,
        prior_weight: float = 1.0,
        label_examples: bool = False,
        label_template: str = DEFAULT_TEMPLATE,
        label_descriptions: dict | None = None,
        pseudo_per_class: int = 80,
        self_training_rounds: int = 4,
        knn: int = 0,
        knn_weight: float = 0.5,
        reject_label="oos",
        seed: int = 0,
        device: str = "cpu",
        progress: bool = False,
        time_budget: float | str = auto.DEFAULT_BUDGET,
        windows: int = WINDOWS,
    ):
        self.encoder, self.method, self.C, self.scale = encoder, method, C, scale
        self.steps, self.batch_size, self.lr, self.loss, self.temperature = steps, batch_size, lr, loss, temperature
        self.prior_weight, self.label_template = prior_weight, label_template
        self.label_examples = label_examples
        self.label_descriptions, self.reject_label = label_descriptions, reject_label
        self.pseudo_per_class, self.self_training_rounds = pseudo_per_class, self_training_rounds
        self.knn, self.knn_weight = knn, knn_weight
        self.seed, self.progress = seed, progress
        self.device = device
        self.time_budget = time_budget
        self.windows = windows

    def _device(self) -> str:
        """``device`` as a string (a ``torch.device`` given to the constructor is kept as given)."""
        return str(self.device) if isinstance(self.device, torch.device) else self.device

    # ---------------------------------------------------------------- fitting
    def check_params(self, names: dict | None = None) -> None:
        """Raise KshotError for the first bad parameter; ``names`` maps a parameter to the name its error
        uses (the CLI passes its flags: ``{"pseudo_per_class": "--pseudo-per-class"}``)."""
        name = lambda param: (names or {}).get(param, param)  # noqa: E731
        check_choice(name("method"), self.method, METHODS)
        check_choice(name("loss"), self.loss, LOSSES)
        for param, low in (
            ("steps", 1),
            ("pseudo_per_class", 1),
            ("self_training_rounds", 1),
            ("knn", 0),
            ("windows", 1),
        ):
            check_positive_int(name(param), getattr(self, param), low)
        w = self.knn_weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w <= 1:
            raise KshotError(f"{name('knn_weight')} must be a number from 0 to 1, got {w!r}")
        auto.parse_duration(self.time_budget, name("time_budget"))
        check_device(self._device(), name("device"))
        self.check_method_params(names)

    def is_default(self, param: str, value, default) -> bool:
        """A time budget compares as seconds (the CLI passes "120", the default is 120.0); a boolean is not
        the number it equals."""
        if param == "time_budget":
            try:
                return auto.parse_duration(value) == auto.parse_duration(default)
            except KshotError:
                return False
        return isinstance(value, bool) == isinstance(default, bool) and super().is_default(param, value, default)

    def _check_xy(self, texts, labels, min_classes: int) -> tuple[list[str], list]:
        texts = check_texts(texts)
        labels = [_plain(y) for y in labels]
        if not texts and self.method != "zeroshot":
            raise KshotError("the training set is empty; give at least one text per class")
        check_labels(
            labels, len(labels) if self.method == "zeroshot" and not texts else len(texts), "texts", min_classes
        )
        return texts, labels

    def _head(self):
        if self.method in ("prototype", "zeroshot", "label_prior"):
            weight = {"prototype": 0.0, "zeroshot": 1.0, "label_prior": self.prior_weight}[self.method]
            return PrototypeHead(scale=self.scale or 20.0, prior_weight=weight)
        return LogisticHead(C=self.C, scale=self.scale or 10.0, knn=self.knn, knn_weight=self.knn_weight)

    def _label_prior(self, head) -> None:
        if isinstance(head, PrototypeHead) and head.params["prior_weight"] > 0:
            head.set_prior(label_embeddings(self.encoder_, self.classes_, self.label_template, self.label_descriptions))

    def _new_head(self):
        """A fresh, empty head for this method (with its label prior, when it has one)."""
        head = self._head()
        self._label_prior(head)
        return head

    def _with_label_texts(self, texts: list[str], y: np.ndarray, classes: list) -> tuple[list[str], np.ndarray]:
        """Append the label text of each of ``classes`` as a training example (``label_examples``)."""
        if not self.label_examples or self.method not in ("logistic", "setfit", "finetune"):
            return texts, y
        index = {c: i for i, c in enumerate(self.classes_)}
        extra = [label_text(c, self.label_template, self.label_descriptions) for c in classes]
        return texts + extra, np.concatenate([y, [index[c] for c in classes]]).astype(np.int64)

    def fit(self, texts, labels, unlabeled=None) -> "FewShotClassifier":
        """Fit on ``texts`` with their ``labels`` (strings or integers); returns self.

        ``unlabeled``: optional texts without labels from the same source, used for self-training."""
        self.check_params()
        texts, labels = self._check_xy(texts, labels, min_classes=2)
        unlabeled = self._check_unlabeled(unlabeled)
        self.classes_ = sorted(set(labels), key=lambda y: (str(type(y)), y))
        index = {c: i for i, c in enumerate(self.classes_)}
        y = np.array([index[v] for v in labels], dtype=np.int64)
        if self.method == "zeroshot":
            texts, y = [], y[:0]
        if self.method == "auto":
            return self._fit_auto(texts, y, unlabeled)
        texts, y = self._with_label_texts(texts, y, self.classes_)
        base = SentenceEncoder(self.encoder, device=self._device(), windows=self.windows)
        self.finetuned_ = self.method in ("setfit", "finetune")
        self.encoder_ = base.trainable() if self.finetuned_ else base
        self.n_pseudo_labels_ = 0
        if self.method == "setfit":
            contrastive_finetune(
                self.encoder_,
                texts,
                y,
                steps=self.steps,
                pairs_per_step=self.batch_size,
                lr=self.lr or 2e-5,
                loss=self.loss,
                temperature=self.temperature,
                seed=self.seed,
                progress=self.progress,
            )
        if self.method == "finetune":
            head = full_finetune(
                self.encoder_,
                texts,
                y,
                len(self.classes_),
                steps=self.steps,
                batch_size=self.batch_size,
                lr=self.lr or 5e-5,
                seed=self.seed,
                scale=self.scale or 10.0,
                progress=self.progress,
            )
            head.X, head.y, head.n_classes = (
                torch.as_tensor(self.encoder_.encode(texts)),
                torch.as_tensor(y),
                len(self.classes_),
            )
        elif unlabeled:
            head, idx, _ = self_train(
                self._new_head,
                self.encoder_.encode(texts),
                y,
                len(self.classes_),
                self.encoder_.encode(unlabeled, progress=self.progress),
                self.pseudo_per_class,
                self.self_training_rounds,
            )
            self.n_pseudo_labels_ = len(idx)
        else:
            head = self._new_head().add(self.encoder_.encode(texts), y, len(self.classes_))
        self.head_ = head
        return self

    def _fit_auto(self, texts: list[str], y: np.ndarray, unlabeled: list[str]) -> "FewShotClassifier":
        """``method="auto"``: see kshot/text/auto.py for how the recipe is chosen."""
        import time

        start = time.perf_counter()
        budget = auto.parse_duration(self.time_budget)
        base = SentenceEncoder(self.encoder, device=self._device(), windows=self.windows)
        words = auto.labels_are_words(self.classes_)
        if words:
            texts = texts + [label_text(c, self.label_template, self.label_descriptions) for c in self.classes_]
            y = np.concatenate([y, np.arange(len(self.classes_))]).astype(np.int64)
        speed = auto.seconds_per_text(base, texts)
        n_windows = len(base.pieces(texts)[0])  # what re-encoding the training texts reads
        recipe, seconds = auto.plan(
            len(texts), len(self.classes_), budget, speed, time.perf_counter() - start, n_windows=n_windows
        )
        recipe.label_examples = words
        self.finetuned_ = recipe.finetune
        self.encoder_ = base.trainable() if recipe.finetune else base
        if recipe.finetune:
            self._say(f"auto (time budget {budget:g} s): {recipe.describe()}")
            losses = contrastive_finetune(
                self.encoder_,
                texts,
                y,
                steps=recipe.steps,
                pairs_per_step=recipe.classes_per_step,
                per_class=recipe.per_class,
                lr=self.lr or auto.LR,
                loss="supcon",
                temperature=self.temperature,
                seed=self.seed,
                progress=self.progress,
                time_limit=seconds,
                max_steps=recipe.step_target,
                hard_share=auto.HARD_SHARE,
            )
            recipe.steps_run = len(losses)
            self.encoder_.blend_into(base, recipe.blend)
        X = self.encoder_.encode(texts)
        n_label_rows = len(self.classes_) if words else 0
        split = len(texts) - n_label_rows
        recipe.C = auto.choose_C(X[:split], y[:split], len(self.classes_), (X[split:], y[split:]), self.seed)
        self.recipe_ = recipe.describe().replace("C by cross-validation", f"C={recipe.C:g} by cross-validation")
        if not recipe.finetune:
            self._say(f"auto (time budget {budget:g} s): {self.recipe_}")

        def new_head():
            return LogisticHead(C=recipe.C, scale=self.scale or 10.0, knn=self.knn, knn_weight=self.knn_weight)

        self.n_pseudo_labels_ = 0
        if unlabeled:
            self.head_, idx, _ = self_train(
                new_head,
                X,
                y,
                len(self.classes_),
                self.encoder_.encode(unlabeled, progress=self.progress),
                self.pseudo_per_class,
                self.self_training_rounds,
            )
            self.n_pseudo_labels_ = len(idx)
        else:
            self.head_ = new_head().add(X, y, len(self.classes_))
        return self

    def _say(self, message: str) -> None:
        if self.progress:
            import sys

            print(message, file=sys.stderr, flush=True)

    def _check_unlabeled(self, unlabeled) -> list[str]:
        if unlabeled is None:
            return []
        unlabeled = check_texts(unlabeled, "unlabeled")
        if unlabeled and self.method == "finetune":
            raise KshotError(
                "unlabeled texts (self-training) work with prototype, logistic, label_prior, "
                "zeroshot and setfit, not with method 'finetune'"
            )
        return unlabeled

    def partial_fit(self, texts, labels) -> "FewShotClassifier":
        """Add examples, of known or new classes, without encoding the earlier texts again.

        After a fit with ``unlabeled=``, the pseudo-labelled texts stay in the head with the labels they
        got then: a class added here gets no share of that pool (fit again with ``unlabeled=`` for that)."""
        if not hasattr(self, "head_"):
            return self.fit(texts, labels)
        if self.method not in FROZEN and not (self.method == "auto" and not self.finetuned_):
            raise KshotError(
                f"partial_fit needs a frozen-encoder method ({', '.join(FROZEN)}), "
                f"not {self.method!r}; fit again instead"
            )
        texts, labels = self._check_xy(texts, labels, min_classes=1)
        known = set(self.classes_)
        new = sorted({v for v in labels if v not in known}, key=str)
        self.classes_ = self.classes_ + new
        index = {c: i for i, c in enumerate(self.classes_)}
        self._label_prior(self.head_)
        texts, y = self._with_label_texts(texts, np.array([index[v] for v in labels], dtype=np.int64), new)
        X = self.encoder_.encode(texts) if self.method != "zeroshot" else np.zeros((0, self.encoder_.dim))
        self.head_.add(X, y[: len(X)], len(self.classes_))
        return self

    # ------------------------------------------------------------- prediction
    def _fitted(self) -> None:
        if not hasattr(self, "head_"):
            raise KshotError("this FewShotClassifier is not fitted yet; call fit(texts, labels) first")

    def predict_proba(self, texts) -> np.ndarray:
        """Class probabilities ``[len(texts), len(classes_)]``, columns in ``classes_`` order."""
        self._fitted()
        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, len(self.classes_)))
        return self.head_.proba(self.encoder_.encode(texts)).numpy()

    def predict_with_scores(self, texts, reject_below: float | None = None) -> tuple[list, np.ndarray]:
        """(labels, best probability); labels under ``reject_below`` become ``reject_label``."""
        proba = self.predict_proba(texts)
        return decide(proba, self.classes_, reject_below, self.reject_label)

    def predict(self, texts, reject_below: float | None = None) -> np.ndarray:
        """The predicted label of each text (``reject_label`` where the best probability is under ``reject_below``)."""
        return np.array(self.predict_with_scores(texts, reject_below)[0], dtype=object)

    def score(self, texts, labels, sample_weight=None) -> float:
        """Accuracy, scikit-learn style (``sample_weight``: not supported, must be None)."""
        if sample_weight is not None:
            raise KshotError("FewShotClassifier.score does not take sample_weight")
        return float(np.mean([p == y for p, y in zip(self.predict(texts), labels)]))

    # -------------------------------------------------------------- save/load
    def save(self, path, info: dict | None = None) -> Path:
        """Write the classifier to the directory ``path`` (safetensors + a JSON manifest, no pickle);
        ``info``: more JSON for the manifest (e.g. what service exported it)."""
        self._fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.finetuned_:
            self.encoder_.save(path / "encoder")
        state = {
            "classes": [_plain(c) for c in self.classes_],
            "finetuned": self.finetuned_,
            "n_pseudo_labels": int(getattr(self, "n_pseudo_labels_", 0)),
            "recipe": getattr(self, "recipe_", self.method),
            "head": {"kind": self.head_.kind, "params": self.head_.params},
            **(info or {}),
        }
        params = {k: v for k, v in self.get_params().items() if k != "progress"} | {"device": self._device()}
        return save_model(path, KIND, self.head_.state(), params, state)

    @classmethod
    def load(cls, path, device: str | None = None) -> "FewShotClassifier":
        """A saved classifier, on ``device`` (default: the device it was fitted on, or the CPU when that one
        is not available here, e.g. a model fitted on a GPU machine and copied to a laptop)."""
        path = Path(path)
        state, meta = load_model(path, KIND)
        params = dict(meta["params"])
        params["device"] = load_device(device, params.get("device"))
        params["windows"] = saved_windows(params)
        clf = cls(**params)
        clf.classes_ = list(meta["classes"])
        clf.finetuned_ = bool(meta["finetuned"])
        clf.n_pseudo_labels_ = int(meta.get("n_pseudo_labels", 0))
        clf.recipe_ = meta.get("recipe", clf.method)
        clf.encoder_ = (
            SentenceEncoder.load_finetuned(path / "encoder", clf.encoder, clf.device, clf.windows)
            if clf.finetuned_
            else SentenceEncoder(clf.encoder, device=clf.device, windows=clf.windows)
        )
        clf.head_ = HEADS[meta["head"]["kind"]](**meta["head"]["params"]).load_state(state, len(clf.classes_))
        return clf

    # ------------------------------------------- stored embeddings (the hook kshot serve uses)
    def embed(self, texts) -> np.ndarray:
        """Encoder embeddings of ``texts``, as the head sees them, without filling the encoder's cache
        (a service sees endless distinct texts)."""
        self._fitted()
        texts = check_texts(texts)
        return self.encoder_._encode_uncached(texts) if texts else np.zeros((0, self.encoder_.dim), np.float32)

    def fit_embeddings(self, X, labels, add: bool = False, max_iter: int | None = None) -> "FewShotClassifier":
        """Fit the head on embeddings made by ``embed`` (the encoder is not touched); ``add=True`` adds them
        to the fitted head (new labels become new classes), else the head is rebuilt on them alone.
        ``max_iter`` caps the logistic head's solver for this fit (see ``Head.add``)."""
        self._fitted()
        labels = [_plain(y) for y in labels]
        if not add:
            self.classes_ = sorted(set(labels), key=lambda y: (str(type(y)), y))
            self.head_ = self._new_head()
        new = sorted({v for v in labels if v not in set(self.classes_)}, key=str)
        self.classes_ = self.classes_ + new
        self._label_prior(self.head_)
        index = {c: i for i, c in enumerate(self.classes_)}
        X = np.asarray(X, dtype=np.float32).reshape(len(labels), -1)
        if self.classes_:
            self.head_.add(X, np.array([index[v] for v in labels], dtype=np.int64), len(self.classes_), max_iter)
        return self

    def proba_embeddings(self, X) -> np.ndarray:
        """``predict_proba`` for embeddings made by ``embed``."""
        self._fitted()
        return self.head_.proba(np.asarray(X, dtype=np.float32)).numpy()


def choose_threshold(clf: FewShotClassifier, texts, labels, reject_label=None) -> float:
    """Pick ``reject_below`` on held-out data mixing in-scope texts and out-of-scope ones (labelled
    ``reject_label``, default ``clf.reject_label``): it maximises the mean of in-scope accuracy and
    out-of-scope recall."""
    reject_label = clf.reject_label if reject_label is None else reject_label
    labels = np.array(labels, dtype=object)
    oos = labels == reject_label
    if oos.all() or not oos.any():
        raise KshotError(f"choose_threshold needs held-out texts both in scope and labelled {reject_label!r}")
    preds, scores = clf.predict_with_scores(texts)
    correct = (np.array(preds, dtype=object) == labels) & ~oos
    candidates = np.unique(np.concatenate([scores, [0.0, 1.0 + 1e-9]]))
    best, best_t = -1.0, 0.0
    for t in candidates:
        keep = scores >= t
        value = 0.5 * ((correct & keep).sum() / (~oos).sum() + (~keep & oos).sum() / oos.sum())
        if value > best:
            best, best_t = value, float(t)
    return best_t
