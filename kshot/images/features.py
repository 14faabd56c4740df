"""Photos -> frozen features of a pretrained network, cached by content.

``ImageEncoder(backbone, weights, device)`` embeds paths, PIL images or arrays as ``[N, 1280]`` float32
features (the network's pooled last map, before its ImageNet classifier). Decoding runs in a thread
pool (Pillow releases the GIL) one batch ahead of the network, so a CPU decodes the next photos while the
network runs on the current ones; large JPEGs are decoded at a reduced scale (``draft``) that still
leaves the crop's full resolution.

Features are cached per (network, weights, input size, tuned weights) and the content of the image: a
file's bytes (a renamed or copied photo hits), an array's or PIL image's pixels. Re-fitting with one more
photo costs one forward pass. ``embed(..., errors="collect")`` returns the images that cannot be read
instead of raising (prediction over a folder reports and counts them).
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..core.device import check_device
from ..core.errors import KshotError
from ..core.io import sha256_file
from ..core.progress import progress_bar
from .efficientnet import VARIANTS, efficientnet_lite
from .photos import open_image
from .transforms import centre_crop, normalise

CACHE_SIZE = 50_000  # features kept (~250 MB at 1,280 floats)
_CACHE: OrderedDict = OrderedDict()  # (encoder key, content digest) -> float32 [D]
_NETS: dict = {}  # (backbone, weights, device) -> the loaded network (shared by frozen encoders)
DECODE_THREADS = 2
_SPEED: dict = {}  # (backbone, image size, device) -> forward seconds per image


def weights_id(backbone: str, weights) -> str:
    """What identifies a network's weights: ``imagenet`` (the packaged, sha256-checked file) or the sha256 of
    the user's file."""
    if str(weights) == "imagenet":
        return "imagenet"
    path = Path(weights)
    if not path.is_file():
        raise KshotError(f"weights file {path} does not exist")
    return "sha256:" + sha256_file(path)


def load_network(backbone: str, weights="imagenet", device: str = "cpu"):
    """The frozen network (shared by the encoders of the same backbone, weights and device)."""
    if backbone not in VARIANTS:
        raise KshotError(f"unknown backbone {backbone!r}; choose one of: {', '.join(VARIANTS)}")
    key = (backbone, weights_id(backbone, weights), device)
    if key not in _NETS:
        net = efficientnet_lite(backbone, weights, num_classes=None)
        _NETS[key] = net.to(device=device, memory_format=torch.channels_last)
    return _NETS[key]


class ImageEncoder:
    """A frozen (or privately tuned, see ``trainable``) pretrained network with a feature cache."""

    def __init__(
        self,
        backbone: str = "efficientnet-lite0",
        weights="imagenet",
        device: str = "cpu",
        image_size: int | None = None,
        batch_size: int = 32,
    ):
        self.backbone, self.weights = backbone, weights
        self.device = check_device(device)
        self.net = load_network(backbone, weights, self.device)
        self.image_size = int(image_size or VARIANTS[backbone].image_size)
        if self.image_size < 32:
            raise KshotError(f"image_size must be at least 32 pixels, got {self.image_size}")
        self.batch_size = batch_size
        self.dim = self.net.out_dim
        self.tuned: str | None = None  # digest of tuned weights (None: the published ones)
        self.weights_id = weights_id(backbone, weights)

    @property
    def key(self) -> str:
        return f"{self.backbone}|{self.weights_id}|{self.image_size}|{self.tuned or ''}"

    def trainable(self) -> "ImageEncoder":
        """A copy with a private network whose weights may change (its features are cached under a key of
        their own once ``mark_tuned`` is called)."""
        other = copy.copy(self)
        other.net = copy.deepcopy(self.net)
        other.tuned = "training"
        return other

    def mark_tuned(self, tensors: dict) -> None:
        h = hashlib.sha256()
        for name in sorted(tensors):
            h.update(name.encode() + tensors[name].detach().cpu().contiguous().numpy().tobytes())
        self.tuned = h.hexdigest()[:16]

    # ------------------------------------------------------------------ decoding
    def _digest(self, item) -> tuple[str, bytes | None]:
        """(content digest, the file's bytes for a path)."""
        if isinstance(item, (str, Path)):
            path = Path(item)
            if not path.is_file():
                raise KshotError(f"image file {path} does not exist" if not path.exists() else f"{path} is not a file")
            data = path.read_bytes()
            return "file:" + hashlib.sha256(data).hexdigest(), data
        if hasattr(item, "tobytes") and hasattr(item, "mode") and hasattr(item, "size"):  # a PIL image
            h = hashlib.sha256(f"{item.mode}{item.size}".encode())
            h.update(item.tobytes())
            return "pil:" + h.hexdigest(), None
        a = np.ascontiguousarray(np.asarray(item))
        h = hashlib.sha256(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
        return "array:" + h.hexdigest(), None

    def decode(self, item, data: bytes | None = None) -> np.ndarray:
        """The network's input crop of one image, uint8 ``[size, size, 3]``."""
        img = open_image(item, draft=self.image_size, data=data)
        return centre_crop(img, self.image_size)

    def _prepare(self, item):
        """(digest, crop or None when cached, error message or None)."""
        try:
            digest, data = self._digest(item)
            if (self.key, digest) in _CACHE:
                return digest, None, None
            return digest, self.decode(item, data), None
        except KshotError as exc:
            return None, None, str(exc)

    # ------------------------------------------------------------------ features
    @torch.inference_mode()
    def forward(self, crops: np.ndarray) -> np.ndarray:
        self.net.eval()
        start = time.perf_counter()
        x = normalise(torch.from_numpy(crops)).to(self.device)
        out = self.net.features(x).float().cpu().numpy()
        if len(crops) >= 4:  # batches of one include start-up costs
            _SPEED[self.backbone, self.image_size, self.device] = (time.perf_counter() - start) / len(crops)
        return out

    def seconds_per_image(self) -> float:
        """The network's forward seconds per image, as last measured here (a probe batch of 4 when never)."""
        key = (self.backbone, self.image_size, self.device)
        if key not in _SPEED:
            self.forward(np.full((4, self.image_size, self.image_size, 3), 127, np.uint8))
        return _SPEED[key]

    def embed(self, items, progress: bool = False, errors: str = "raise") -> tuple[np.ndarray, list]:
        """Features ``[len(items), D]`` and the failures ``[(index, message)]`` (their rows are zeros). With
        ``errors="raise"`` the first unreadable image raises its one-line KshotError."""
        items = list(items)
        out = np.zeros((len(items), self.dim), np.float32)
        failed: list = []
        key = self.key
        with (
            ThreadPoolExecutor(DECODE_THREADS) as pool,
            progress_bar(len(items), "embedding photos", enabled=progress and len(items) > 0) as advance,
        ):
            chunks = [range(s, min(s + self.batch_size, len(items))) for s in range(0, len(items), self.batch_size)]
            pending = pool.map(self._prepare, items[chunks[0].start : chunks[0].stop]) if chunks else None
            for c, chunk in enumerate(chunks):
                prepared = list(pending)
                if c + 1 < len(chunks):  # decode the next batch while this one runs through the network
                    nxt = chunks[c + 1]
                    pending = pool.map(self._prepare, items[nxt.start : nxt.stop])
                todo, crops = [], []
                for i, (digest, crop, error) in zip(chunk, prepared):
                    if error is not None:
                        if errors == "raise":
                            raise KshotError(error)
                        failed.append((i, error))
                    elif crop is None:
                        out[i] = _CACHE[key, digest]
                        _CACHE.move_to_end((key, digest))
                    else:
                        todo.append((i, digest))
                        crops.append(crop)
                if crops:
                    feats = self.forward(np.stack(crops))
                    for (i, digest), f in zip(todo, feats):
                        out[i] = f
                        if self.tuned != "training":
                            _CACHE[key, digest] = f
                    while len(_CACHE) > CACHE_SIZE:
                        _CACHE.popitem(last=False)
                advance(len(chunk))
        return out, failed

    def views(self, items, size: int) -> list[np.ndarray]:
        """Decoded training views (see ``transforms.train_view``) of ``items``, for augmentation."""
        from .transforms import train_view

        with ThreadPoolExecutor(DECODE_THREADS) as pool:
            return list(pool.map(lambda it: train_view(open_image(it, draft=round(size * 8 / 7)), size), items))
