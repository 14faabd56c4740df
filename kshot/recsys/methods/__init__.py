"""Cold-start methods, one file each; ``METHODS`` maps the names of ``kshot recsys train --method``.

Rating predictors (``predicts_ratings``): mean, item_mean, bias, demographic, mf, itemknn, melu, attention,
finetune. Top-N rankers (``RANKERS``): popularity, random, group_popularity, ease, successors, knn, rp3beta,
ials, gru, sasrec, melu_rank."""

from ...core.errors import check_choice
from .attention import Attention
from .base import ColdStartMethod
from .bias import Bias
from .demographic import Demographic
from .ease import EASE
from .finetune import FineTune
from .group_popularity import GroupPopularity
from .gru import GRURanker
from .ials import IALS
from .item_mean import ItemMean
from .itemknn import ItemKNN
from .knn import ItemKNNRanker
from .mean import GlobalMean
from .melu import MeLU
from .melu_rank import MeLURank
from .mf import MatrixFactorization
from .popularity import Popularity
from .random import RandomRanker
from .rp3beta import RP3Beta
from .sasrec import SASRec
from .successors import Successors

METHODS: dict = {
    c.name: c
    for c in (
        GlobalMean,
        ItemMean,
        Bias,
        Demographic,
        MatrixFactorization,
        ItemKNN,
        Popularity,
        RandomRanker,
        MeLU,
        Attention,
        FineTune,
        GroupPopularity,
        EASE,
        Successors,
        ItemKNNRanker,
        RP3Beta,
        IALS,
        GRURanker,
        SASRec,
        MeLURank,
    )
}
RANKERS = tuple(name for name, c in METHODS.items() if not c.predicts_ratings)


def build(name: str, seed: int = 0, **params) -> ColdStartMethod:
    return METHODS[check_choice("method", name, METHODS)](seed=seed, **params)


__all__ = ["METHODS", "RANKERS", "ColdStartMethod", "build"]
