"""ANIL, Almost No Inner Loop (Raghu et al. 2020).

MAML with only the linear head adapting in the inner loop: the backbone is meta-learned in the outer
loop but frozen within a task, so the support features are computed once per task and the inner steps
are cheap. Shares the inner loop of ``gradient.py`` (over ``kshot.core.adapt``).
"""

from __future__ import annotations

from .gradient import GradientMethod


class ANIL(GradientMethod):
    adapt_head_only = True
