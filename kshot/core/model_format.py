"""One saved-model format for every kind of kshot model: a directory holding ``model.json`` (the manifest)
and ``model.safetensors`` (the tensors), plus any sub-folders the kind needs (a fine-tuned encoder).

The manifest is JSON: ``kind`` (``text-classifier``, ``image-classifier``, ``tagger``, ``recommender``),
``format_version``, ``kshot_version``, ``params`` (the estimator's constructor parameters), ``files`` and
the kind's own state. Both files are written atomically by ``kshot.core.checkpoint`` (the tensors file
carries the manifest and a sha256 of the tensors in its header, so a crash between the two writes still
leaves a model that loads as the new one). Loading never executes code from the files.

``read_manifest(path)`` tells the kind of any model directory without loading it, including the layouts
of earlier versions (``kshot_model.*`` for text, ``kshot_tagger.*`` for taggers, ``model.*`` with a
``format`` key for recommenders, ``best.*`` in an episodic training run); ``kshot.load`` dispatches on it.
A manifest of a newer format, or of another kind than the caller expects, is refused with one line.
"""

from __future__ import annotations

import json
from pathlib import Path

from .checkpoint import load_checkpoint, save_checkpoint
from .errors import KshotError
from .version import __version__

FORMAT_VERSION = 1
MODEL_FILE = "model"  # model.json + model.safetensors
KINDS = {
    "text-classifier": "a text classifier (kshot fit / FewShotClassifier)",
    "image-classifier": "an image classifier (kshot image fit / FewShotImageClassifier)",
    "tagger": "an entity tagger (kshot tag fit / FewShotTagger)",
    "recommender": "a recommender (kshot recsys train / Recommender)",
    "episodic-run": "an episodic training run (kshot image train / meta_train)",
}
# layouts written before the one format: (file prefix, the value of its "format" key) -> kind
LEGACY = {
    ("kshot_model", "kshot-text-classifier"): "text-classifier",
    ("kshot_tagger", "kshot-tagger"): "tagger",
    ("model", "kshot.recsys/1"): "recommender",
}


def save_model(path, kind: str, tensors: dict, params: dict, state: dict | None = None) -> Path:
    """Write the model directory ``path``: the manifest (``kind``, versions, ``params``, ``state``) and
    ``tensors`` (a dict of CPU or device tensors). Returns ``path``."""
    if kind not in KINDS:
        raise KshotError(f"unknown model kind {kind!r}; known kinds: {', '.join(KINDS)}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    manifest = {
        "kind": kind,
        "format_version": FORMAT_VERSION,
        "kshot_version": __version__,
        "params": params,
        "files": {"tensors": f"{MODEL_FILE}.safetensors"},
        **(state or {}),
    }
    save_checkpoint(path / MODEL_FILE, tensors, manifest)
    return path


def read_manifest(path) -> tuple[Path, dict]:
    """The checkpoint prefix and the manifest of the model directory ``path`` (any kind, any layout), or a
    one-line KshotError naming ``path`` when it holds no kshot model."""
    path = Path(path)
    if not path.is_dir():
        raise KshotError(f"{path} is not a kshot model directory (it does not exist or is not a folder)")
    for prefix in (MODEL_FILE, "kshot_model", "kshot_tagger", "best"):
        meta_file = path / f"{prefix}.json"
        if not meta_file.is_file():
            continue
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError):
            raise KshotError(f"{meta_file} is damaged: it is not valid JSON") from None
        if not isinstance(meta, dict):
            raise KshotError(f"{meta_file} is not a kshot manifest (not a JSON object)")
        if "kind" not in meta:  # an earlier layout
            if prefix == "best" and "method" in meta and "item_shape" in meta:
                meta = {**meta, "kind": "episodic-run"}
            elif (prefix, meta.get("format")) in LEGACY:
                meta = {**meta, "kind": LEGACY[prefix, meta.get("format")]}
            else:
                raise KshotError(f"{meta_file} is not a kshot manifest (format {meta.get('format')!r})")
        return path / prefix, meta
    raise KshotError(
        f"{path} is not a kshot model directory (no {MODEL_FILE}.json); make one with kshot fit, "
        "kshot image fit, kshot tag fit or kshot recsys train"
    )


def check_manifest(path, meta: dict, kind: str) -> dict:
    """Refuse a manifest of another kind or of a newer format than this kshot reads."""
    found = meta.get("kind")
    if found not in KINDS:
        raise KshotError(
            f"{path} holds a model of unknown kind {found!r} (a newer kshot?); this kshot reads: {', '.join(KINDS)}"
        )
    if found != kind:
        raise KshotError(f"{path} holds {KINDS[found]}, not {KINDS[kind]}; load it with kshot.load(path)")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise KshotError(
            f"{path} was saved in model format {version!r} by kshot {meta.get('kshot_version')}; "
            f"this kshot ({__version__}) reads format {FORMAT_VERSION} and earlier: upgrade kshot"
        )
    return meta


def load_model(path, kind: str) -> tuple[dict, dict]:
    """The tensors and the manifest of the model directory ``path``, which must hold a model of ``kind``."""
    prefix, meta = read_manifest(path)
    check_manifest(path, meta, kind)
    tensors, meta, _ = load_checkpoint(prefix)
    meta.setdefault("kind", kind)
    return tensors, meta
