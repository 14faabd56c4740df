"""Data augmentation for image items, usable by every method (pure torch).

* Class augmentation: ``rotate_classes(data)`` turns each class into four, one per rotation by a
  multiple of 90 degrees (the Omniglot standard; the Vinyals split files already list the rotations,
  so use it for data without them, e.g. Omniglot's ``protocol="lake"``).
* Image transforms: ``Augmentation(shift=2, rotate=10)`` moves each image by a random whole number of
  pixels in ``[-shift, shift]`` on each axis (a random crop of the zero-padded image) and rotates it by
  a random angle in ``[-rotate, rotate]`` degrees. Every image gets its own draw, from a generator that
  training seeds per episode, so runs stay reproducible and resumable.

Training takes these as ``TrainConfig.augment`` (CLI ``--augment KEY=VALUE``), off by default:
``{"shift": 2, "rotate": 10, "classes": true}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import KshotError, check_positive_int
from ..data.base import LabeledData
from .episodes import Episode


@dataclass(frozen=True)
class Augmentation:
    shift: int = 0  # pixels, each axis
    rotate: float = 0.0  # degrees
    classes: bool = False  # four rotated copies of every training class

    KEYS = ("shift", "rotate", "classes")

    @classmethod
    def from_dict(cls, d: dict | None) -> "Augmentation":
        d = dict(d or {})
        unknown = sorted(set(d) - set(cls.KEYS))
        if unknown:
            raise KshotError(f"unknown augmentation {unknown[0]!r}; choose from: {', '.join(cls.KEYS)}")
        shift = check_positive_int("augment shift", d.get("shift", 0), 0)
        rotate = d.get("rotate", 0.0)
        if isinstance(rotate, bool) or not isinstance(rotate, (int, float)) or not 0 <= rotate <= 180:
            raise KshotError(f"augment rotate must be a number of degrees in [0, 180], got {rotate!r}")
        classes = d.get("classes", False)
        if not isinstance(classes, bool):
            raise KshotError(f"augment classes must be true or false, got {classes!r}")
        return cls(shift, float(rotate), classes)

    @property
    def transforms_images(self) -> bool:
        return self.shift > 0 or self.rotate > 0

    def images(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Randomly shift and rotate every image of ``x`` (``[..., C, H, W]``)."""
        if not self.transforms_images:
            return x
        flat = x.reshape(-1, *x.shape[-3:])
        n, (h, w) = flat.shape[0], flat.shape[-2:]
        angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(self.rotate)
        shifts = torch.randint(-self.shift, self.shift + 1, (n, 2), generator=generator).float()
        cos, sin = angle.cos(), angle.sin()
        theta = torch.stack(
            [torch.stack([cos, -sin, -2 * shifts[:, 0] / w], -1), torch.stack([sin, cos, -2 * shifts[:, 1] / h], -1)], 1
        )  # [n, 2, 3]
        grid = F.affine_grid(theta.to(flat.device, flat.dtype), list(flat.shape), align_corners=False)
        return F.grid_sample(flat, grid, padding_mode="zeros", align_corners=False).reshape(x.shape)

    def episode(self, episode: Episode, generator: torch.Generator | None = None) -> Episode:
        """The episode with its support and query images transformed."""
        if not self.transforms_images:
            return episode
        return Episode(
            self.images(episode.support, generator),
            episode.support_labels,
            self.images(episode.query, generator),
            episode.query_labels,
            episode.classes,
        )

    def data(self, data: LabeledData) -> LabeledData:
        """The training data, with rotated copies of every class when ``classes`` is on."""
        return rotate_classes(data) if self.classes else data


def generator_for(seed: int, step: int) -> torch.Generator:
    """A generator seeded by ``(seed, step)``: the same draws for the same step of the same run."""
    return torch.Generator().manual_seed(int(np.random.default_rng([seed, step]).integers(2**62)))


def rotate_classes(data: LabeledData) -> LabeledData:
    """Four classes per class: the images rotated by 0, 90, 180 and 270 degrees (class ``c + k * C``)."""
    if not isinstance(data.items, torch.Tensor) or data.items.dim() != 4:
        raise KshotError(
            f"class rotation needs image items [N, C, H, W], got {data.name or 'data'} items "
            f"of shape {tuple(getattr(data.items, 'shape', ()))}"
        )
    c = data.num_classes
    items = torch.cat([torch.rot90(data.items, k, dims=(-2, -1)) for k in range(4)])
    labels = np.concatenate([data.labels + k * c for k in range(4)])
    names = [f"{name}/rot{90 * k:03d}" for k in range(4) for name in data.class_names]
    return LabeledData(
        items.contiguous(), labels, names, name=data.name, split=data.split, meta={**data.meta, "rotated_classes": True}
    )
