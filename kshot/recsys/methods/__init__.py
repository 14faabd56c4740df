"""Cold-start methods, one file each; ``METHODS`` maps the names of ``kshot recsys train --method``."""

from ...core.errors import check_choice
from .attention import Attention
from .base import ColdStartMethod
from .bias import Bias
from .demographic import Demographic
from .finetune import FineTune
from .item_mean import ItemMean
from .itemknn import ItemKNN
from .mean import GlobalMean
from .melu import MeLU
from .mf import MatrixFactorization
from .popularity import Popularity
from .random import RandomRanker

METHODS: dict = {c.name: c for c in (GlobalMean, ItemMean, Bias, Demographic, MatrixFactorization, ItemKNN,
                                     Popularity, RandomRanker, MeLU, Attention, FineTune)}


def build(name: str, seed: int = 0, **params) -> ColdStartMethod:
    return METHODS[check_choice("method", name, METHODS)](seed=seed, **params)


__all__ = ["METHODS", "ColdStartMethod", "build"]
