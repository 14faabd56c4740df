"""Feature extractors shared by every method: Conv4, an MLP, and the pretrained EfficientNet-Lite networks.

``track_running_stats=False`` gives BatchNorm that always uses batch statistics, as MAML needs.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import KshotError, check_choice
from .batchnorm import batch_norm as cheap_second_order_batch_norm

DOWNSAMPLING = ("maxpool", "stride")


def conv_block(
    in_channels: int, out_channels: int, track_running_stats: bool = True, downsample: str = "maxpool"
) -> nn.Sequential:
    """Conv 3x3, BatchNorm, max-pool 2, ReLU; or, with ``downsample="stride"``, a stride-2 conv 3x3,
    BatchNorm, ReLU (MAML's Omniglot network: the convolution computes 4x fewer outputs); ``"none"``
    keeps the size (the relation module of Relation Networks on small maps).

    Pooling comes before the ReLU: the two commute exactly (ReLU is monotone), and the ReLU and its
    backward then run on a map 4x smaller. ReLU and pooling have no parameters, so the parameter names
    (and checkpoints written with the old conv, BN, ReLU, pool order) are unchanged.
    """
    check_choice("downsample", downsample, (*DOWNSAMPLING, "none"))
    stride = 2 if downsample == "stride" else 1
    layers = [
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
        nn.BatchNorm2d(out_channels, track_running_stats=track_running_stats),
    ]
    if downsample == "maxpool":
        layers.append(nn.MaxPool2d(2))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class GlobalAvgPool(nn.Module):
    """Mean over the spatial dimensions: ``[B, C, H, W]`` -> ``[B, C]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


class Conv4(nn.Sequential):
    """4 x [conv 3x3 (``hidden`` filters), BatchNorm, max-pool 2, ReLU], then flatten.

    28x28 inputs give 64-d features (``hidden`` x 1 x 1); 84x84 give 1600-d.
    ``flatten=False`` keeps the feature map (Relation networks need it).

    ``downsample="stride"`` is the network of MAML's Omniglot experiments (Finn et al. 2017, also
    learn2learn's ``OmniglotCNN``): stride-2 convolutions instead of max-pooling, then the mean over the
    last feature map (28x28 inputs: 14, 7, 4, 2 pixels a side, ``hidden``-d features). About 4x fewer
    convolution FLOPs than the max-pool network, for the same parameters.
    """

    def __init__(
        self,
        in_channels: int = 1,
        hidden: int = 64,
        depth: int = 4,
        track_running_stats: bool = True,
        flatten: bool = True,
        image_size: int = 28,
        downsample: str = "maxpool",
    ):
        check_choice("downsample", downsample, DOWNSAMPLING)
        blocks = [
            conv_block(in_channels if i == 0 else hidden, hidden, track_running_stats, downsample) for i in range(depth)
        ]
        strided = downsample == "stride"
        tail = [GlobalAvgPool()] if flatten and strided else [nn.Flatten()] if flatten else []
        super().__init__(*blocks, *tail)
        side = image_size
        for _ in range(depth):
            side = (side + 1) // 2 if strided else side // 2
        self.out_dim = hidden * (1 if strided else side * side) if flatten else hidden
        self.out_shape = (hidden, 1, 1) if flatten and strided else (hidden, side, side)
        self.item_dims = 3
        self.flatten = flatten  # False: features are maps of ``out_shape`` (only Relation Networks take them)
        # channels-last convolutions are ~1.5x faster on CPU (oneDNN); results are the same
        self.channels_last = True
        self.to(memory_format=torch.channels_last)


class MLP(nn.Sequential):
    """Flatten, then Linear-ReLU layers (no activation after the last)."""

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int] = (256, 128),
        out_dim: int | None = None,
        track_running_stats: bool = True,
    ):  # accepted like Conv4's; the MLP has no BatchNorm
        dims = [in_dim, *hidden] + ([out_dim] if out_dim else [])
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)
        self.out_dim = dims[-1]
        self.item_dims = 1  # build_backbone sets the real number of item dimensions


class Pretrained(nn.Module):
    """An ImageNet EfficientNet-Lite (kshot/images/efficientnet.py) over a data set's image tensors
    ``[B, C, h, w]`` in 0..1 (grey or RGB): scaled to 0..255 (``invert``: 255 minus it, for white-on-black
    sets such as Omniglot and Fashion-MNIST), grey repeated to RGB, resized to ``image_size`` (bilinear,
    antialiased), ``(x - 127) / 128``; features ``[B, 1280]``.

    Only the last ``tune_blocks`` blocks and the head convolution are trainable (meta-fine-tuning: "pretrain,
    meta-train, fine-tune"); the rest runs without gradients. BatchNorm keeps its ImageNet statistics in
    training too (episodes are no batch to estimate them on)."""

    def __init__(
        self,
        name: str = "efficientnet-lite0",
        image_size: int = 224,
        invert: bool = False,
        tune_blocks: int = 2,
        weights: str = "imagenet",
        track_running_stats: bool = True,
    ):
        super().__init__()
        from .efficientnet import efficientnet_lite

        self.net = efficientnet_lite(name, weights, num_classes=None).to(memory_format=torch.channels_last)
        self.image_size, self.invert = int(image_size), bool(invert)
        self.tune_blocks = min(int(tune_blocks), len(self.net.blocks))
        self.cut = len(self.net.blocks) - self.tune_blocks
        tuned = {f"blocks.{i}." for i in range(self.cut, len(self.net.blocks))} | {"head."}
        for key, p in self.net.named_parameters():
            p.requires_grad_(self.tune_blocks > 0 and any(key.startswith(t) for t in tuned))
        self.out_dim, self.item_dims, self.channels_last = self.net.out_dim, 3, True

    def train(self, mode: bool = True):
        super().train(mode)
        self.net.eval()  # frozen BatchNorm statistics
        return self

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() * 255.0
        if self.invert:
            x = 255.0 - x
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(
                x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True, align_corners=False
            )
        return ((x - 127.0) / 128.0).contiguous(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            h = self.net.blocks[: self.cut](self.net.stem(self.prepare(x)))
        if self.tune_blocks == 0:
            with torch.no_grad():
                return self.net.head(h).mean((2, 3))
        return self.net.head(self.net.blocks[self.cut :](h)).mean((2, 3))


BACKBONES = ("conv4", "mlp", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")


def build_backbone(name: str, item_shape: Sequence[int], **kwargs) -> nn.Module:
    """Build a backbone by name for items of shape ``item_shape`` (e.g. ``(1, 28, 28)``)."""
    if name == "conv4":
        if len(item_shape) != 3:
            raise KshotError(f"backbone conv4 needs image items [C, H, W], got shape {tuple(item_shape)}")
        return Conv4(in_channels=item_shape[0], image_size=item_shape[-1], **kwargs)
    if name == "mlp":
        net = MLP(int(math.prod(item_shape)), **kwargs)
        net.item_dims = len(item_shape)
        return net
    if name.startswith("efficientnet-lite") and name in BACKBONES:
        if len(item_shape) != 3 or item_shape[0] not in (1, 3):
            raise KshotError(
                f"backbone {name} needs grey or RGB image items [1|3, H, W], got shape {tuple(item_shape)}"
            )
        return Pretrained(name, **kwargs)
    raise KshotError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")


def uses_running_stats(module: nn.Module) -> bool:
    """True when any BatchNorm layer keeps running statistics."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats for m in module.modules())


def encode(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run ``backbone`` over items with any number of leading dimensions (e.g. ``[T, N, C, H, W]``)."""
    lead = x.shape[: x.dim() - getattr(backbone, "item_dims", 1)]
    flat = x.reshape(-1, *x.shape[len(lead) :])
    if getattr(backbone, "channels_last", False) and flat.dim() == 4:
        flat = flat.contiguous(memory_format=torch.channels_last)
    out = backbone(flat)
    return out.reshape(*lead, *out.shape[1:])


def pure_forward(
    module: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, autograd: bool = False
) -> torch.Tensor:
    """``module(x)`` with the weights in ``params`` (named as in ``module.named_parameters()``).

    A pure function: unlike ``torch.func.functional_call`` it never swaps tensors into the module, so
    several threads may run it at once on the same module. It knows the layers of this file
    (``supports_pure_forward`` says whether a module is made only of them); BatchNorm uses batch
    statistics. ``autograd=True`` (derivatives by plain autograd, not under ``torch.func`` transforms):
    BatchNorm through ``kshot.images.batchnorm``, the same values with a much cheaper second derivative.
    """
    return _PURE[type(module)](module, params, x, "", autograd)


def supports_pure_forward(module: nn.Module) -> bool:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
        return False
    return type(module) in _PURE and all(supports_pure_forward(m) for m in module.children())


def _sequential(module, params, x, prefix, autograd):
    for name, child in module.named_children():
        x = _PURE[type(child)](child, params, x, f"{prefix}{name}.", autograd)
    return x


def _bias(params, prefix):
    return params.get(prefix + "bias")


def _batch_norm(m, params, x, prefix, autograd):
    weight, bias = params.get(prefix + "weight"), _bias(params, prefix)
    if autograd and weight is not None and bias is not None:
        return cheap_second_order_batch_norm(x, weight, bias, m.eps)
    return _F.batch_norm(x, None, None, weight, bias, True, 0.0, m.eps)


_F = nn.functional
_PURE = {
    nn.Sequential: _sequential,
    Conv4: _sequential,
    MLP: _sequential,
    nn.Conv2d: lambda m, p, x, pre, ag: _F.conv2d(
        x, p[pre + "weight"], _bias(p, pre), m.stride, m.padding, m.dilation, m.groups
    ),
    nn.BatchNorm2d: _batch_norm,
    nn.MaxPool2d: lambda m, p, x, pre, ag: _F.max_pool2d(
        x, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode
    ),
    nn.ReLU: lambda m, p, x, pre, ag: _F.relu(x),
    nn.Flatten: lambda m, p, x, pre, ag: x.flatten(m.start_dim, m.end_dim),
    GlobalAvgPool: lambda m, p, x, pre, ag: x.mean((2, 3)),
    nn.Linear: lambda m, p, x, pre, ag: _F.linear(x, p[pre + "weight"], _bias(p, pre)),
}
