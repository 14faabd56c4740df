"""Classification heads over unit-norm embeddings (sentence or image features).

Both heads keep the (few) support embeddings they were fitted on, so ``partial_fit`` can add examples
or whole new classes without encoding the old texts again. State is a dict of tensors (safetensors).

* ``PrototypeHead``: nearest class mean by cosine; a class prototype may be blended with a label-name
  embedding (``prior``, weight ``prior_weight`` in units of examples), which alone gives zero-shot.
* ``LogisticHead``: multinomial logistic regression (L2, full-batch L-BFGS: scipy's, on an analytic
  gradient in float64, so a warm-started refit after one added example takes a few milliseconds).
  With ``knn=k`` its probabilities are blended with a vote of the ``k`` nearest rows it was fitted on
  (``neighbour_vote``): after self-training those are the labelled and pseudo-labelled texts, so a
  query is also judged by the pool texts most like it, which a linear boundary alone cannot follow.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize
from threadpoolctl import ThreadpoolController


def decide(
    proba: np.ndarray, classes: list, reject_below: float | None = None, reject_label="oos"
) -> tuple[list, np.ndarray]:
    """(labels, best probability) of probability rows ``[n, len(classes)]``; a row whose best probability is
    under ``reject_below`` gets ``reject_label``."""
    best = proba.argmax(1) if len(proba) else np.zeros(0, dtype=np.int64)
    scores = proba.max(1) if len(proba) else np.zeros(0)
    preds = [classes[i] for i in best]
    if reject_below is not None:
        preds = [reject_label if s < reject_below else p for p, s in zip(preds, scores)]
    return preds, scores


class Head:
    kind = ""

    def __init__(self, **params):
        self.params = params
        self.X = torch.zeros(0, 0)
        self.y = torch.zeros(0, dtype=torch.long)
        self.n_classes = 0

    def add(self, X: np.ndarray, y: np.ndarray, n_classes: int, max_iter: int | None = None) -> "Head":
        """Append rows and refit; ``max_iter`` caps an iterative head's work for this refit (a service
        adding one example at a time: the next refit continues from these weights)."""
        X = torch.as_tensor(np.asarray(X, dtype=np.float32))
        y = torch.as_tensor(np.asarray(y, dtype=np.int64))
        self.X = X if self.X.numel() == 0 else torch.cat([self.X, X])
        self.y = torch.cat([self.y, y])
        self.n_classes = n_classes
        self.refit(max_iter)
        return self

    def refit(self, max_iter: int | None = None) -> None:
        raise NotImplementedError

    def logits(self, X: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def proba(self, X: np.ndarray) -> torch.Tensor:
        """Class probabilities ``[len(X), n_classes]`` (float64)."""
        return torch.softmax(self.logits(X).double(), dim=1)

    def state(self) -> dict[str, torch.Tensor]:
        return {"X": self.X, "y": self.y}

    def load_state(self, state: dict, n_classes: int) -> "Head":
        self.X, self.y, self.n_classes = state["X"], state["y"], n_classes
        return self


class PrototypeHead(Head):
    """Cosine to class prototypes, times ``scale`` (an inverse temperature for the probabilities)."""

    kind = "prototype"

    def __init__(self, scale: float = 20.0, prior_weight: float = 0.0):
        super().__init__(scale=scale, prior_weight=prior_weight)
        self.prior: torch.Tensor | None = None  # [C, D] label embeddings, optional
        self.prototypes = torch.zeros(0, 0)

    def set_prior(self, prior: np.ndarray | None) -> "PrototypeHead":
        self.prior = None if prior is None else torch.as_tensor(np.asarray(prior, dtype=np.float32))
        return self

    def refit(self, max_iter: int | None = None) -> None:  # closed form: max_iter does not apply
        dim = self.X.shape[1] if self.X.numel() else self.prior.shape[1]
        sums = (
            torch.zeros(self.n_classes, dim).index_add_(0, self.y, self.X)
            if self.X.numel()
            else torch.zeros(self.n_classes, dim)
        )
        counts = torch.bincount(self.y, minlength=self.n_classes).float().unsqueeze(1)
        if self.prior is not None and self.params["prior_weight"] > 0:
            w = self.params["prior_weight"]
            sums, counts = sums + w * self.prior[: self.n_classes], counts + w
        self.prototypes = F.normalize(sums / counts.clamp_min(1e-8), dim=1)

    def logits(self, X) -> torch.Tensor:
        X = F.normalize(torch.as_tensor(np.asarray(X, dtype=np.float32)), dim=1)
        return self.params["scale"] * X @ self.prototypes.T

    def state(self) -> dict:
        out = super().state()
        if self.prior is not None:
            out["prior"] = self.prior
        return out

    def load_state(self, state: dict, n_classes: int) -> "PrototypeHead":
        super().load_state(state, n_classes)
        self.set_prior(state.get("prior"))
        self.refit()
        return self


def neighbour_vote(
    M: torch.Tensor, y: torch.Tensor, n_classes: int, Q, k: int, temperature: float = 0.05, chunk: int = 1024
) -> torch.Tensor:
    """For each row of ``Q``: the labels ``y`` of its ``k`` most cosine-similar rows of ``M``, weighted by
    softmax(cosine / ``temperature``) over those ``k``; ``[len(Q), n_classes]`` float64, rows sum to 1."""
    M = F.normalize(torch.as_tensor(M, dtype=torch.float32), dim=1)
    Q = F.normalize(torch.as_tensor(np.asarray(Q, dtype=np.float32)), dim=1)
    k = min(k, len(M))
    out = torch.zeros(len(Q), n_classes, dtype=torch.float64)
    for start in range(0, len(Q), chunk):
        sim, nbr = (Q[start : start + chunk] @ M.T).topk(k, dim=1)
        weight = torch.softmax(sim.double() / temperature, dim=1)
        out[start : start + chunk].scatter_add_(1, y[nbr], weight)
    return out


@functools.cache
def _blas() -> ThreadpoolController:
    """The process's BLAS thread pools (found once: looking them up costs milliseconds)."""
    return ThreadpoolController()


class LogisticHead(Head):
    """Softmax regression on ``scale`` * embedding; objective: mean cross-entropy + ||W||^2 / (2 C n).

    ``knn > 0``: ``proba`` is ``(1 - knn_weight)`` * the softmax + ``knn_weight`` * ``neighbour_vote`` over
    the fitted rows (``logits`` stays the plain regression, which self-training selects with)."""

    kind = "logistic"

    def __init__(
        self,
        C: float = 1.0,
        scale: float = 10.0,
        max_iter: int = 200,
        knn: int = 0,
        knn_weight: float = 0.5,
        knn_temperature: float = 0.05,
    ):
        super().__init__(
            C=C, scale=scale, max_iter=max_iter, knn=knn, knn_weight=knn_weight, knn_temperature=knn_temperature
        )
        self.W = torch.zeros(0, 0)
        self.b = torch.zeros(0)

    def _warm_start(self, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Previous weights for known classes; new classes start from their scaled prototype."""
        W, b = torch.zeros(self.n_classes, dim), torch.zeros(self.n_classes)
        known = self.W.shape[0]
        if known:
            W[:known], b[:known] = self.W, self.b
        for c in range(known, self.n_classes):
            members = self.X[self.y == c]
            if len(members):
                W[c] = F.normalize(members.mean(0), dim=0)
        return W, b

    def refit(self, max_iter: int | None = None) -> None:
        X = self.params["scale"] * self.X.double().numpy()
        y = self.y.numpy()
        W0, b0 = self._warm_start(X.shape[1])
        k, d, n = self.n_classes, X.shape[1], len(X)
        l2 = 1.0 / (2.0 * self.params["C"] * n)
        onehot = np.zeros((n, k))
        onehot[np.arange(n), y] = 1.0

        def objective(theta):
            W, b = theta[: k * d].reshape(k, d), theta[k * d :]
            Z = X @ W.T + b
            Z -= Z.max(1, keepdims=True)
            lse = np.log(np.exp(Z).sum(1, keepdims=True))
            P = np.exp(Z - lse)
            loss = float((lse[:, 0] - Z[np.arange(n), y]).mean() + l2 * (W * W).sum())
            G = (P - onehot) / n
            return loss, np.concatenate([(G.T @ X + 2.0 * l2 * W).ravel(), G.sum(0)])

        theta0 = np.concatenate([W0.double().numpy().ravel(), b0.double().numpy()])
        # vectors of a few thousand numbers: BLAS threads would only wait on each other
        with _blas().limit(limits=1, user_api="blas"):
            res = minimize(
                objective,
                theta0,
                jac=True,
                method="L-BFGS-B",
                options={"maxiter": max_iter or self.params["max_iter"], "gtol": 1e-6, "ftol": 1e-9},
            )
        theta = torch.from_numpy(res.x).float()
        self.W, self.b = theta[: k * d].reshape(k, d).clone(), theta[k * d :].clone()

    def set_weights(self, W: torch.Tensor, b: torch.Tensor) -> "LogisticHead":
        self.W, self.b = W.detach().float().cpu(), b.detach().float().cpu()
        return self

    def logits(self, X) -> torch.Tensor:
        X = torch.as_tensor(np.asarray(X, dtype=np.float32))
        return (self.params["scale"] * X) @ self.W.T + self.b

    def proba(self, X) -> torch.Tensor:
        p = super().proba(X)
        k, w = self.params.get("knn", 0), self.params.get("knn_weight", 0.5)
        if not k or not w or not len(self.X):
            return p
        vote = neighbour_vote(self.X, self.y, self.n_classes, X, k, self.params.get("knn_temperature", 0.05))
        return (1 - w) * p + w * vote

    def state(self) -> dict:
        return {**super().state(), "W": self.W, "b": self.b}

    def load_state(self, state: dict, n_classes: int) -> "LogisticHead":
        super().load_state(state, n_classes)
        return self.set_weights(state["W"], state["b"])


HEADS = {cls.kind: cls for cls in (PrototypeHead, LogisticHead)}
