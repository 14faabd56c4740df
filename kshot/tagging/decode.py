"""Viterbi decoding and the abstract IO transitions of StructShot (Yang & Katiyar 2020)."""

from __future__ import annotations

import numpy as np
import torch


def viterbi(emissions: torch.Tensor, transitions: torch.Tensor, start: torch.Tensor) -> np.ndarray:
    """Best label path of one sentence: ``emissions`` [L, C], ``transitions`` [C, C] (from -> to) and
    ``start`` [C], all log-scores."""
    score = start + emissions[0]
    back = []
    for e in emissions[1:]:
        total = score.unsqueeze(1) + transitions  # [from, to]
        score, idx = total.max(0)
        score = score + e
        back.append(idx)
    path = [int(score.argmax())]
    for idx in reversed(back):
        path.append(int(idx[path[-1]]))
    return np.array(path[::-1], dtype=np.int64)


def abstract_transitions(labels, n_classes: int, smoothing: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Log transition matrix [C, C] and start scores [C] over IO classes (0 = O) from the support's label
    sequences, through the abstract transitions O->O, O->I, I->O, I->same I, I->other I (and start in O or
    I), each estimated by counting with ``smoothing``; an abstract I probability is shared equally by the
    types it can go to."""
    c = {k: smoothing for k in ("OO", "OI", "IO", "II", "IJ", "sO", "sI")}
    for seq in labels:
        seq = list(seq)
        c["sO" if seq[0] == 0 else "sI"] += 1
        for a, b in zip(seq, seq[1:]):
            key = ("O" if a == 0 else "I") + ("O" if b == 0 else ("I" if a in (0, b) else "J"))
            c[key] += 1
    n = n_classes - 1
    o_tot, i_tot = c["OO"] + c["OI"], c["IO"] + c["II"] + c["IJ"]
    T = torch.empty(n_classes, n_classes)
    T[0, 0], T[0, 1:] = c["OO"] / o_tot, c["OI"] / o_tot / n
    T[1:, 0] = c["IO"] / i_tot
    T[1:, 1:] = c["IJ"] / i_tot / max(n - 1, 1)
    T[1:, 1:].fill_diagonal_(c["II"] / i_tot)
    s_tot = c["sO"] + c["sI"]
    start = torch.tensor([c["sO"] / s_tot] + [c["sI"] / s_tot / n] * n)
    return T.log(), start.log()
