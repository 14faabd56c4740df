"""Label semantics: embed each class name (or a short description) in a sentence template.

Used alone these embeddings give zero-shot prototypes; blended with the few-shot prototypes they act
as a prior, which helps most at 1 shot.
"""

from __future__ import annotations

import re

import numpy as np

from .encoder import SentenceEncoder

DEFAULT_TEMPLATE = "This text is about {label}"


def label_text(label, template: str = DEFAULT_TEMPLATE, descriptions: dict | None = None) -> str:
    """``card_arrival`` -> "This text is about card arrival" (a description, when given, replaces the name)."""
    if descriptions and str(label) in descriptions:
        return str(descriptions[str(label)])
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", str(label))
    words = re.sub(r"[_\-./]+", " ", words).strip().lower()
    return template.format(label=words)


def label_embeddings(
    encoder: SentenceEncoder, labels, template: str = DEFAULT_TEMPLATE, descriptions: dict | None = None
) -> np.ndarray:
    return encoder.encode([label_text(c, template, descriptions) for c in labels])
