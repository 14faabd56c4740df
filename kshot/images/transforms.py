"""Photos to network inputs, and the augmentation of fine-tuning (pure torch, seeded).

* ``centre_crop(img, size)``: the evaluation crop of EfficientNet: the central square of side
  ``min(w, h) * size / (size + 32)`` resized to ``size`` (bicubic), uint8 ``[size, size, 3]``.
* ``normalise(x)``: uint8 or 0..255 floats ``[B, H, W, 3]`` -> ``(x - 127) / 128`` as ``[B, 3, H, W]``
  (channels-last memory: ~2x faster convolutions on CPU).
* ``Augment``: random resized crop (a share ``scale`` of the area, aspect ratio in ``ratio``), horizontal
  flip and colour jitter (brightness, contrast, saturation) of ``[B, 3, S, S]`` 0..255 images made by
  ``train_view`` (the photo at ``size * 8 / 7`` on its short side, centre-cropped square), drawn from a
  ``torch.Generator`` so that a fit is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

CROP_PADDING = 32  # EfficientNet's evaluation crop: size / (size + 32) of the short side


def _square(img, side: float, out: int) -> np.ndarray:
    from PIL import Image

    w, h = img.size
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    return np.asarray(img.resize((out, out), Image.BICUBIC, box=box, reducing_gap=3.0), dtype=np.uint8)


def centre_crop(img, size: int) -> np.ndarray:
    return _square(img, min(img.size) * size / (size + CROP_PADDING), size)


def train_view(img, size: int) -> np.ndarray:
    """The whole short side of the photo, as a square of ``size * 8 / 7`` pixels (random crops come from it)."""
    return _square(img, min(img.size), round(size * 8 / 7))


def normalise(x) -> torch.Tensor:
    x = torch.as_tensor(x).float()
    return (
        ((x - 127.0) / 128.0).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
        if x.shape[-1] == 3
        else ((x - 127.0) / 128.0).contiguous(memory_format=torch.channels_last)
    )


@dataclass(frozen=True)
class Augment:
    size: int = 224
    scale: tuple[float, float] = (0.35, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3

    def __call__(self, views: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augmented network inputs ``[B, 3, size, size]`` (normalised) from 0..255 views ``[B, 3, S, S]``."""
        out = torch.stack([self._crop(v, generator) for v in views])
        if self.flip:
            mirror = torch.rand(len(out), generator=generator) < 0.5
            out = torch.where(mirror.view(-1, 1, 1, 1), out.flip(-1), out)
        out = self._jitter(out, generator)
        return ((out - 127.0) / 128.0).contiguous(memory_format=torch.channels_last)

    def _crop(self, view: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        side = view.shape[-1]
        area = side * side
        for _ in range(10):
            target = area * _uniform(*self.scale, g)
            aspect = float(np.exp(_uniform(np.log(self.ratio[0]), np.log(self.ratio[1]), g)))
            w, h = round((target * aspect) ** 0.5), round((target / aspect) ** 0.5)
            if 0 < w <= side and 0 < h <= side:
                break
        else:
            w = h = side
        top = int(torch.randint(0, side - h + 1, (1,), generator=g))
        left = int(torch.randint(0, side - w + 1, (1,), generator=g))
        patch = view[None, :, top : top + h, left : left + w].float()
        return F.interpolate(patch, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)[
            0
        ]

    def _jitter(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n = len(x)

        def factors(amount):
            return (1 + (torch.rand(n, generator=g) * 2 - 1) * amount).view(-1, 1, 1, 1)

        grey = lambda t: 0.299 * t[:, 0:1] + 0.587 * t[:, 1:2] + 0.114 * t[:, 2:3]  # noqa: E731
        if self.brightness:
            x = x * factors(self.brightness)
        if self.contrast:
            x = (x - grey(x).mean((2, 3), keepdim=True)) * factors(self.contrast) + grey(x).mean((2, 3), keepdim=True)
        if self.saturation:
            g_ = grey(x)
            x = (x - g_) * factors(self.saturation) + g_
        return x.clamp(0, 255)


def _uniform(lo: float, hi: float, g: torch.Generator) -> float:
    return float(lo + (hi - lo) * torch.rand(1, generator=g))
