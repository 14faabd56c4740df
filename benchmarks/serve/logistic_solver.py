"""The logistic head's scipy solver against the torch L-BFGS it replaced, on real embeddings.

BANKING77, 10 examples per class (seed 0), frozen MiniLM embeddings, 1,000 test texts (seed 0); both
solvers minimise the same objective (mean cross-entropy + ||W||^2 / (2 C n), scale 10) from zeros.

    KSHOT_DATA=../shared/data PYTHONPATH=. HF_HUB_OFFLINE=1 python benchmarks/serve/logistic_solver.py
"""

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F


def old_fit(X, y, k, C=10.0, scale=10.0):
    X = scale * torch.as_tensor(X)
    y = torch.as_tensor(y)
    W = torch.zeros(k, X.shape[1], requires_grad=True)
    b = torch.zeros(k, requires_grad=True)
    l2 = 1.0 / (2.0 * C * len(X))
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=200, tolerance_grad=1e-6, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(X @ W.T + b, y) + l2 * (W * W).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return W.detach(), b.detach()


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    torch.set_num_threads(1)
    from kshot.core.heads import LogisticHead
    from kshot.data.intents import load_banking77
    from kshot.text.encoder import SentenceEncoder

    tr, te = load_banking77("train"), load_banking77("test")
    rng = np.random.default_rng(0)
    pick = np.concatenate(
        [rng.choice(np.flatnonzero(tr.labels == c), 10, replace=False) for c in range(len(tr.class_names))]
    )
    test = rng.choice(len(te.labels), 1000, replace=False)
    enc = SentenceEncoder()
    Xtr = enc.encode([tr.items[i] for i in pick])
    ytr = np.asarray(tr.labels)[pick]
    Xte = enc.encode([te.items[i] for i in test])
    yte = np.asarray(te.labels)[test]
    for C in (1.0, 10.0, 100.0):
        t = time.perf_counter()
        W, b = old_fit(Xtr, ytr, 77, C)
        t_old = time.perf_counter() - t
        t = time.perf_counter()
        h = LogisticHead(C=C).add(Xtr, ytr, 77)
        t_new = time.perf_counter() - t
        p_old = ((10 * torch.as_tensor(Xte)) @ W.T + b).argmax(1).numpy()
        p_new = h.logits(Xte).argmax(1).numpy()
        print(
            f"C={C}: acc old {np.mean(p_old == yte):.4f} new {np.mean(p_new == yte):.4f} agree {np.mean(p_old == p_new):.4f} "
            f"max|dW| {float((W - h.W).abs().max()):.2e} fit s old {t_old:.2f} new {t_new:.2f}"
        )


if __name__ == "__main__":
    main()
