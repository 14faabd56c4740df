"""What every method is: an ``nn.Module`` mapping (support, support_labels, query) to query logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...core.errors import KshotError
from ..episodes import Episode


class FewShotMethod(nn.Module):
    """Base class of the few-shot methods.

    ``forward(support, support_labels, query)`` returns logits ``[Q, N]`` for one episode, or
    ``[T, Q, N]`` when every tensor has a leading task dimension ``T``. Adaptation (prototypes,
    inner-loop steps, a fitted head) happens inside ``forward``.
    """

    #: keyword arguments the backbone needs for this method (e.g. no running BatchNorm statistics)
    backbone_defaults: dict = {}
    #: True when the test-time adaptation takes gradients (evaluation must not run under no_grad)
    adapts_with_gradients: bool = False
    #: True for transfer methods trained by supervised pre-training on all base classes: meta_train
    #: then feeds ``pretrain_loss(items, labels)`` shuffled mini-batches instead of episodes, and
    #: ``build_method`` passes ``num_classes`` (the number of base classes)
    pretrains: bool = False
    #: True when the method takes the backbone's feature maps (a Conv4 with ``flatten=False``)
    uses_feature_maps: bool = False

    def __init__(self, backbone: nn.Module):
        super().__init__()
        if getattr(backbone, "flatten", True) is False and not self.uses_feature_maps:
            raise KshotError(
                f"{type(self).__name__} needs flat features, but the backbone keeps its feature "
                "maps (flatten=False); only relationnet takes maps: drop the backbone parameter "
                "flatten=false"
            )
        self.backbone = backbone

    def hparams(self) -> dict:
        """The JSON-able constructor arguments (besides the backbone), stored in checkpoints."""
        return {}

    def loss(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        """Training loss on an episode (cross-entropy on the query logits) and the logits."""
        logits = self(episode.support, episode.support_labels, episode.query)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), episode.query_labels.reshape(-1)), logits


def episode_items(episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
    """Support and query of an episode as one set: items ``[..., S + Q, ...]`` and labels ``[..., S + Q]``."""
    dim = episode.support_labels.dim() - 1
    return (
        torch.cat([episode.support, episode.query], dim),
        torch.cat([episode.support_labels, episode.query_labels], dim),
    )
