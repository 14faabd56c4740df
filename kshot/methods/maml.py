"""MAML (Finn et al. 2017) and its first-order approximation.

Meta-learns an initialisation: each task adapts all weights with a few gradient steps on its support
set, and the initialisation is updated with the gradient of the adapted model's query loss, taken
through the inner steps (second order) or treating the inner gradients as constants (first order).
The inner loop itself lives in ``inner_loop.py``.
"""

from __future__ import annotations

from .inner_loop import GradientMethod


class MAML(GradientMethod):
    """Second-order MAML. Omniglot settings of the paper: inner_lr 0.4, 1 inner step, 3 at test."""


class FOMAML(GradientMethod):
    """First-order MAML: the meta-gradient is the query gradient at the adapted weights."""

    first_order = True
