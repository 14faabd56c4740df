"""The few-shot methods, by the name used on the command line."""

from __future__ import annotations

from ...core.errors import KshotError
from ..backbones import build_backbone
from .anil import ANIL
from .base import FewShotMethod
from .baseline import Baseline, BaselinePlusPlus
from .maml import FOMAML, MAML
from .matchingnet import MatchingNet
from .metasgd import MetaSGD
from .protonet import ProtoNet
from .relationnet import RelationNet
from .reptile import Reptile
from .siamese import Siamese

METHODS: dict[str, type[FewShotMethod]] = {
    "protonet": ProtoNet,
    "siamese": Siamese,
    "matchingnet": MatchingNet,
    "relationnet": RelationNet,
    "baseline": Baseline,
    "baseline++": BaselinePlusPlus,
    "maml": MAML,
    "fomaml": FOMAML,
    "anil": ANIL,
    "metasgd": MetaSGD,
    "reptile": Reptile,
}


def build_method(
    name: str, item_shape, backbone: str = "conv4", backbone_params: dict | None = None, **params
) -> FewShotMethod:
    """Build method ``name`` on a fresh ``backbone`` for items of ``item_shape``."""
    if name not in METHODS:
        raise KshotError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    cls = METHODS[name]
    try:
        net = build_backbone(backbone, item_shape, **{**cls.backbone_defaults, **(backbone_params or {})})
    except TypeError as exc:
        raise KshotError(f"backbone {backbone!r} does not fit method {name!r}: {exc}") from None
    try:
        return cls(net, **params)
    except TypeError as exc:
        raise KshotError(f"bad parameter for method {name!r}: {exc}") from None


__all__ = [
    "ANIL",
    "FOMAML",
    "MAML",
    "METHODS",
    "MetaSGD",
    "Reptile",
    "Baseline",
    "BaselinePlusPlus",
    "FewShotMethod",
    "MatchingNet",
    "ProtoNet",
    "RelationNet",
    "Siamese",
    "build_method",
]
