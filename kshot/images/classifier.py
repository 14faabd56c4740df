"""FewShotImageClassifier: few-shot classification of the user's own photos on a pretrained network.

    clf = FewShotImageClassifier().fit("photos/")               # photos/<label>/*.jpg
    clf = FewShotImageClassifier(method="prototype").fit(paths, labels)
    clf.predict(["new/1.jpg"], reject_below=0.5)                 # "unknown" under the threshold

Images are file paths, PIL images or arrays (kshot/images/photos.py). The network is an ImageNet
EfficientNet-Lite (kshot/images/efficientnet.py); its frozen features are cached by image content
(kshot/images/features.py). Methods:

* ``prototype``  nearest class mean by cosine on the frozen features (``scale`` x cosine as logits);
* ``logistic``   logistic-regression head on the frozen features (L2, ``C``);
* ``finetune``   the last ``tune_blocks`` blocks and the head convolution trained on the photos with
                 augmentation (random resized crop, flip, colour jitter; kshot/images/finetune.py) for
                 ``steps`` steps, then the logistic head on the tuned features;
* ``auto``       the default: ``finetune`` when the photos have at least ``AUTO_MIN_SHOTS`` (20) per class
                 and at least ``AUTO_MIN_STEPS`` steps fit in ``time_budget`` seconds at the speed measured
                 while embedding them, else ``logistic``: on Fashion-MNIST fine-tuning beat the frozen
                 features at 20 shots, not at 1 or 5 (docs/images.md).

Features are L2-normalised before a head (both heads are the text classifier's, kshot/core/heads.py).
``predict_proba`` columns follow ``classes_``; ``predict`` is their argmax, or ``reject_label`` where the
best probability is under ``reject_below``. ``partial_fit`` adds photos of known or new classes without
embedding the earlier ones again (with a fine-tuned network too: it stays as tuned). ``save``/``load``:
the one model format (kshot/core/model_format.py), safetensors + JSON, the tuned weights included.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import ClassifierMixin

from ..core.device import check_device, load_device
from ..core.errors import KshotError, check_choice, check_positive_int
from ..core.estimator import Estimator, check_labels
from ..core.heads import HEADS, LogisticHead, PrototypeHead, decide
from ..core.model_format import load_model, save_model
from .efficientnet import VARIANTS
from .features import ImageEncoder, weights_id
from .finetune import finetune, tuned_names
from .photos import read_labeled

METHODS = ("auto", "prototype", "logistic", "finetune")
KIND = "image-classifier"
AUTO_MIN_SHOTS = 20  # fine-tuning from 20 photos a class: on Fashion-MNIST it beat the frozen head by
# 1.4 ± 0.7 points at 20 shots, by nothing measurable at 1 or 5 (docs/images.md)
AUTO_MIN_STEPS = 20  # ... and only when this many steps fit in the time budget
TRAIN_COST = 2.0  # a fine-tuning step in forward passes of its batch (the tuned blocks backward,
# augmentation: a margin)


def auto_plan(
    y: np.ndarray, n_classes: int, per_image: float, elapsed: float, budget: float, steps: int
) -> tuple[str, str]:
    """``auto``'s choice for training labels ``y``: (method, why). Fine-tuning when the smallest class has at
    least ``AUTO_MIN_SHOTS`` photos and at least ``AUTO_MIN_STEPS`` steps fit in what is left of ``budget``
    at ``per_image`` forward seconds an image; else the logistic head on frozen features."""
    shots = int(np.bincount(y, minlength=n_classes).min())
    if shots < AUTO_MIN_SHOTS:
        return "logistic", (
            f"{shots} photo(s) in the smallest class (fine-tuning from {AUTO_MIN_SHOTS}): frozen features"
        )
    batch = min(len(y), max(1, 20 // n_classes) * n_classes)
    available = budget - elapsed - 1.5 * per_image * len(y)  # re-embedding the photos after tuning
    affordable = int(available / (TRAIN_COST * batch * per_image)) if available > 0 else 0
    if affordable < AUTO_MIN_STEPS:
        return "logistic", f"only {max(affordable, 0)} fine-tuning steps would fit in the budget: frozen features"
    return "finetune", f"{shots}+ photos a class and up to {min(steps, affordable)} steps fit in the budget"


def _plain(label):
    return label.item() if isinstance(label, np.generic) else label


def _unit(X) -> torch.Tensor:
    return F.normalize(torch.as_tensor(np.asarray(X, dtype=np.float32)), dim=1)


class FewShotImageClassifier(ClassifierMixin, Estimator):
    """Classify photos from a few labelled examples per class (see the module docstring)."""

    method_params = {
        "C": ("logistic", "finetune", "auto"),
        "steps": ("finetune", "auto"),
        "lr": ("finetune", "auto"),
        "tune_blocks": ("finetune", "auto"),
        "time_budget": ("auto",),
    }

    def __init__(
        self,
        backbone: str = "efficientnet-lite0",
        method: str = "auto",
        *,
        weights: str = "imagenet",
        C: float = 10.0,
        scale: float | None = None,
        steps: int = 60,
        lr: float = 1e-3,
        tune_blocks: int = 2,
        batch_size: int = 32,
        image_size: int | None = None,
        reject_label="unknown",
        seed: int = 0,
        device: str = "cpu",
        progress: bool = False,
        time_budget: float = 120.0,
    ):
        self.backbone, self.method, self.weights = backbone, method, weights
        self.C, self.scale, self.steps, self.lr, self.tune_blocks = C, scale, steps, lr, tune_blocks
        self.batch_size, self.image_size, self.reject_label = batch_size, image_size, reject_label
        self.seed, self.device, self.progress, self.time_budget = seed, device, progress, time_budget

    # ---------------------------------------------------------------- checks
    def check_params(self, names: dict | None = None) -> None:
        """Raise KshotError for the first bad parameter (``names``: the CLI's flag for a parameter)."""
        name = lambda p: (names or {}).get(p, p)  # noqa: E731
        check_choice(name("method"), self.method, METHODS)
        check_choice(name("backbone"), self.backbone, VARIANTS)
        for param in ("steps", "batch_size"):
            check_positive_int(name(param), getattr(self, param), 1)
        check_positive_int(name("tune_blocks"), self.tune_blocks, 1)
        if self.image_size is not None:
            check_positive_int(name("image_size"), self.image_size, 32)
        for param in ("C", "lr", "time_budget") + (("scale",) if self.scale is not None else ()):
            v = getattr(self, param)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
                raise KshotError(f"{name(param)} must be a number > 0, got {v!r}")
        check_device(self.device, name("device"))
        self.check_method_params(names)

    def _check_xy(self, images, labels, min_classes: int) -> tuple[list, list]:
        if labels is None:
            if not isinstance(images, (str, Path)):
                raise KshotError("give labels with the images, or a folder of class sub-folders / a path,label file")
            images, labels = read_labeled(images)
        if isinstance(images, (str, Path)):
            raise KshotError(f"images must be a list (of paths, PIL images or arrays), got the single path {images}")
        images, labels = list(images), [_plain(y) for y in labels]
        if not images:
            raise KshotError("the training set is empty; give at least one photo per class")
        check_labels(labels, len(images), "images", min_classes)
        return images, labels

    # ---------------------------------------------------------------- fitting
    def fit(self, images, labels=None) -> "FewShotImageClassifier":
        """Fit on ``images`` (paths, PIL images or arrays) with their ``labels``; or ``fit(folder)`` for
        ``folder/<label>/*`` and ``fit(table)`` for a ``path,label`` CSV/JSONL. Returns self."""
        self.check_params()
        start = time.perf_counter()
        images, labels = self._check_xy(images, labels, min_classes=2)
        self.classes_ = sorted(set(labels), key=lambda y: (str(type(y)), y))
        index = {c: i for i, c in enumerate(self.classes_)}
        y = np.array([index[v] for v in labels], dtype=np.int64)
        self.encoder_ = ImageEncoder(self.backbone, self.weights, self.device, self.image_size, self.batch_size)
        X, _ = self.encoder_.embed(images, progress=self.progress)
        per_image = self.encoder_.seconds_per_image()
        method, why = self.method, ""
        if method == "auto":
            method, why = auto_plan(
                y, len(self.classes_), per_image, time.perf_counter() - start, self.time_budget, self.steps
            )
        self.finetuned_, self.steps_run_ = method == "finetune", 0
        if self.finetuned_:
            budget = (
                None
                if self.method != "auto"
                else max(1.0, self.time_budget - (time.perf_counter() - start) - 1.5 * per_image * len(images))
            )
            tuned = self.encoder_.trainable()
            views = np.stack(tuned.views(images, tuned.image_size))
            self.steps_run_ = finetune(
                tuned,
                views,
                y,
                len(self.classes_),
                X,
                steps=self.steps,
                tune_blocks=self.tune_blocks,
                lr=self.lr,
                seed=self.seed,
                progress=self.progress,
                time_limit=budget,
            )
            self.encoder_ = tuned
            X, _ = self.encoder_.embed(images, progress=self.progress)
        self.head_ = self._new_head(method).add(_unit(X), y, len(self.classes_))
        self.method_ = method
        self.recipe_ = self._describe(method, why)
        if self.method == "auto":
            self._say(f"auto (time budget {self.time_budget:g} s): {self.recipe_}")
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _describe(self, method: str, why: str) -> str:
        body = {
            "prototype": "frozen features, nearest class mean (cosine)",
            "logistic": "frozen features, logistic head",
            "finetune": f"fine-tuned the last {self.tune_blocks} blocks ({self.steps_run_} steps), logistic head",
        }
        return body[method] + (f"; {why}" if why else "")

    def _new_head(self, method: str):
        if method == "prototype":
            return PrototypeHead(scale=self.scale or 20.0)
        return LogisticHead(C=self.C, scale=self.scale or 10.0)

    def _say(self, message: str) -> None:
        if self.progress:
            print(message, file=sys.stderr, flush=True)

    def partial_fit(self, images, labels=None) -> "FewShotImageClassifier":
        """Add photos of known or new classes; the photos fitted before are not embedded again."""
        if not hasattr(self, "head_"):
            return self.fit(images, labels)
        images, labels = self._check_xy(images, labels, min_classes=1)
        new = sorted({v for v in labels if v not in set(self.classes_)}, key=str)
        self.classes_ = self.classes_ + new
        index = {c: i for i, c in enumerate(self.classes_)}
        X, _ = self.encoder_.embed(images, progress=self.progress)
        self.head_.add(_unit(X), np.array([index[v] for v in labels], dtype=np.int64), len(self.classes_))
        return self

    # ------------------------------------------------------------- prediction
    def _fitted(self) -> None:
        if not hasattr(self, "head_"):
            raise KshotError("this FewShotImageClassifier is not fitted yet; call fit(images, labels) first")

    def embed(self, images, errors: str = "raise") -> tuple[np.ndarray, list]:
        """The features the head sees (unit norm) and the unreadable images ``[(index, message)]``."""
        self._fitted()
        if isinstance(images, (str, Path)):
            raise KshotError(f"images must be a list, got the single path {images}; wrap it in a list")
        X, failed = self.encoder_.embed(list(images), progress=self.progress, errors=errors)
        return _unit(X).numpy(), failed

    def predict_proba(self, images) -> np.ndarray:
        """Class probabilities ``[len(images), len(classes_)]``, columns in ``classes_`` order."""
        X, _ = self.embed(images)
        if not len(X):
            return np.zeros((0, len(self.classes_)))
        return self.head_.proba(X).numpy()

    def labels_for(self, proba: np.ndarray, reject_below: float | None = None) -> tuple[list, np.ndarray]:
        """(labels, best probability) of probability rows; under ``reject_below``: ``reject_label``."""
        return decide(proba, self.classes_, reject_below, self.reject_label)

    def predict(self, images, reject_below: float | None = None) -> np.ndarray:
        return np.array(self.labels_for(self.predict_proba(images), reject_below)[0], dtype=object)

    # -------------------------------------------------------------- save/load
    def save(self, path) -> Path:
        """Write the classifier to the directory ``path`` (safetensors + a JSON manifest; no pickle)."""
        self._fitted()
        tensors = dict(self.head_.state())
        names = tuned_names(self.encoder_.net, self.tune_blocks) if self.finetuned_ else []
        state_dict = self.encoder_.net.state_dict()
        tensors.update({f"net.{k}": state_dict[k] for k in names})
        state = {
            "classes": [_plain(c) for c in self.classes_],
            "method": self.method_,
            "recipe": self.recipe_,
            "finetuned": self.finetuned_,
            "steps_run": self.steps_run_,
            "weights_id": self.encoder_.weights_id,
            "head": {"kind": self.head_.kind, "params": self.head_.params},
        }
        params = {k: v for k, v in self.get_params().items() if k != "progress"}
        return save_model(path, KIND, tensors, params, state)

    @classmethod
    def load(cls, path, device: str | None = None) -> "FewShotImageClassifier":
        """A saved classifier, on ``device`` (default: the one it was fitted on, else the CPU)."""
        tensors, meta = load_model(path, KIND)
        params = dict(meta["params"])
        params["device"] = load_device(device, params.get("device"))
        clf = cls(**params)
        if weights_id(clf.backbone, clf.weights) != meta.get("weights_id", "imagenet"):
            raise KshotError(f"{path} was fitted on the weights {clf.weights}, which have changed since; fit again")
        clf.classes_ = list(meta["classes"])
        clf.method_, clf.recipe_ = meta["method"], meta.get("recipe", meta["method"])
        clf.finetuned_, clf.steps_run_ = bool(meta["finetuned"]), int(meta.get("steps_run", 0))
        clf.encoder_ = ImageEncoder(clf.backbone, clf.weights, clf.device, clf.image_size, clf.batch_size)
        net_tensors = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
        if net_tensors:
            clf.encoder_ = clf.encoder_.trainable()
            clf.encoder_.net.load_state_dict({**clf.encoder_.net.state_dict(), **net_tensors}, strict=True)
            clf.encoder_.net.to(clf.device)
            clf.encoder_.mark_tuned(net_tensors)
        head_tensors = {k: v for k, v in tensors.items() if not k.startswith("net.")}
        clf.head_ = HEADS[meta["head"]["kind"]](**meta["head"]["params"]).load_state(head_tensors, len(clf.classes_))
        return clf
