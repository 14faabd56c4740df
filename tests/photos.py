"""Small photo folders drawn with Pillow: one class per shape and colour, on varied light backgrounds."""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {"circle": (220, 40, 40), "square": (40, 160, 60), "triangle": (40, 60, 220)}


def draw(shape: str, rng, size=(96, 80)) -> Image.Image:
    img = Image.new("RGB", size, tuple(int(v) for v in rng.integers(190, 255, 3)))
    d = ImageDraw.Draw(img)
    cx, cy = (int(v) for v in rng.integers(32, 48, 2))
    r = int(rng.integers(16, 26))
    colour = tuple(int(np.clip(v + rng.integers(-30, 30), 0, 255)) for v in COLOURS[shape])
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    return img


def make_folder(root, per_class=4, seed=0, classes=tuple(COLOURS)) -> Path:
    """``root/<shape>/<i>.jpg|png``: ``per_class`` photos of each shape, JPEG and PNG alternating."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for shape in classes:
        (root / shape).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(shape, rng).save(root / shape / (f"{i}.jpg" if i % 2 == 0 else f"{i}.png"))
    return root
