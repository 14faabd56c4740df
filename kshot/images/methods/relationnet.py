"""Relation Networks (Sung et al. 2018).

The backbone's feature map of each class (the mean over its support examples; the paper sums them,
which differs by a constant factor that BatchNorm absorbs) is concatenated channel-wise with the
feature map of each query; a learned relation module (two conv blocks, then two linear layers and a
sigmoid) scores every (query, class) pair in ``[0, 1]``. Training regresses the scores onto one-hot
targets with mean squared error, as in the paper.

The relation module max-pools only while the feature map is at least 2x2, so it works on Conv4 maps
of any size (Omniglot 28x28 gives 64x1x1, miniImageNet 84x84 gives 64x5x5). A flattened backbone
output is reshaped to its ``out_shape`` (Conv4) or treated as a ``D x 1 x 1`` map (MLP). A strided
Conv4 (``downsample="stride"``) averages its last map, so the module sees ``64x1x1``; add
``flatten=False`` to the backbone parameters to keep the map (84x84 inputs: ``64x6x6``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...core.errors import check_positive_int
from ...core.prototypes import class_means, num_ways
from ..backbones import conv_block, encode
from .base import FewShotMethod


class RelationNet(FewShotMethod):
    uses_feature_maps = True

    def __init__(self, backbone, hidden: int = 64, fc_dim: int = 8):
        super().__init__(backbone)
        self.hidden = check_positive_int("hidden", hidden, 1)
        self.fc_dim = check_positive_int("fc_dim", fc_dim, 1)
        self.feature_shape = tuple(getattr(backbone, "out_shape", (backbone.out_dim, 1, 1)))
        channels, side, _ = self.feature_shape
        blocks = []
        for i in range(2):
            pool = side >= 2
            blocks.append(
                conv_block(2 * channels if i == 0 else hidden, hidden, downsample="maxpool" if pool else "none")
            )
            side = side // 2 if pool else side
        self.relation = nn.Sequential(
            *blocks, nn.Flatten(), nn.Linear(hidden * side * side, fc_dim), nn.ReLU(inplace=True), nn.Linear(fc_dim, 1)
        )

    def hparams(self) -> dict:
        return {"hidden": self.hidden, "fc_dim": self.fc_dim}

    def forward(self, support, support_labels, query):
        """Relation scores ``[..., Q, N]`` in ``[0, 1]`` (the largest wins)."""
        lead_s, lead_q = support_labels.shape, query.shape[: support_labels.dim()]
        z_support = encode(self.backbone, support).reshape(*lead_s, -1)  # [..., S, F]
        z_query = encode(self.backbone, query).reshape(*lead_q, -1)  # [..., Q, F]
        classes = class_means(z_support, support_labels, num_ways(support_labels))  # [..., N, F]
        pairs = torch.cat(torch.broadcast_tensors(z_query.unsqueeze(-2), classes.unsqueeze(-3)), -1)
        c, h, w = self.feature_shape
        scores = self.relation(pairs.reshape(-1, 2 * c, h, w))
        return torch.sigmoid(scores).reshape(pairs.shape[:-1])

    def loss(self, episode):
        scores = self(episode.support, episode.support_labels, episode.query)
        return F.mse_loss(scores, F.one_hot(episode.query_labels, scores.shape[-1]).to(scores.dtype)), scores
