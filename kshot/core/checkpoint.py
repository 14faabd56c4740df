"""Checkpoints: weights (and optimizer state) in safetensors, everything else in JSON.

A checkpoint ``PREFIX`` is two files, ``PREFIX.safetensors`` and ``PREFIX.json``, each written atomically.
The tensors file is self-contained: its header carries the metadata and a sha256 of the tensors, so a
process killed between the two writes (tensors new, JSON still the previous checkpoint's) leaves a
checkpoint that loads as the new one. The JSON is a readable copy that also records the sha256 of the
tensors file. Loading reads tensors and JSON only: it never executes code from the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .errors import KshotError
from .io import atomic_write

OPTIM = "optim."
META_KEY, SHA_KEY = "kshot.meta", "kshot.tensors_sha256"


def tensors_sha256(tensors: dict) -> str:
    """sha256 over the names and raw bytes of ``tensors`` (sorted by name; any dtype)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous().reshape(-1)
        h.update(name.encode() + b"\0" + str(t.dtype).encode() + b"\0")
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _header_metadata(data: bytes) -> dict:
    """The ``__metadata__`` of a safetensors blob's header ({} when absent or unreadable)."""
    try:
        size = int.from_bytes(data[:8], "little")
        return json.loads(data[8 : 8 + size]).get("__metadata__") or {}
    except (ValueError, AttributeError):
        return {}


def save_checkpoint(prefix, state_dict: dict, meta: dict, optimizer=None) -> None:
    """Write ``PREFIX.safetensors`` (``state_dict`` + optimizer tensors) and ``PREFIX.json`` (``meta``)."""
    prefix = Path(prefix)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    meta = dict(meta)
    if optimizer is not None:
        opt = optimizer.state_dict()
        scalars = {}
        for idx, st in opt["state"].items():
            for key, val in st.items():
                if torch.is_tensor(val):
                    tensors[f"{OPTIM}{idx}.{key}"] = val.detach().cpu().contiguous()
                else:
                    scalars[f"{idx}.{key}"] = val
        meta["optimizer"] = {"param_groups": opt["param_groups"], "scalars": scalars}
    blob = st_save(tensors, metadata={META_KEY: json.dumps(meta), SHA_KEY: tensors_sha256(tensors)})
    tensor_path = prefix.with_suffix(".safetensors")
    with atomic_write(tensor_path) as f:
        f.write(blob)
    meta["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    with atomic_write(prefix.with_suffix(".json"), "w") as f:
        json.dump(meta, f, indent=2)


def load_checkpoint(prefix) -> tuple[dict, dict, dict | None]:
    """Return (model state_dict, meta, optimizer state_dict or None)."""
    prefix = Path(prefix)
    json_path, tensor_path = prefix.with_suffix(".json"), prefix.with_suffix(".safetensors")
    if not json_path.is_file() or not tensor_path.is_file():
        raise KshotError(f"no checkpoint at {prefix} (expected {json_path.name} and {tensor_path.name})")
    try:
        meta = json.loads(json_path.read_text())
    except json.JSONDecodeError as exc:
        raise KshotError(f"{json_path} is not valid JSON: {exc}") from None
    data = tensor_path.read_bytes()
    embedded = _header_metadata(data)
    if META_KEY in embedded and SHA_KEY in embedded:
        # self-contained tensors file: the source of truth (the JSON may be one save behind it)
        try:
            tensors = st_load(data)
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise KshotError(f"checksum mismatch for {tensor_path}: unreadable ({exc})") from None
        if tensors_sha256(tensors) != embedded[SHA_KEY]:
            raise KshotError(f"checksum mismatch for {tensor_path}: its tensors do not match its own sha256")
        meta = {**json.loads(embedded[META_KEY]), "weights_sha256": hashlib.sha256(data).hexdigest()}
    else:
        if meta.get("weights_sha256") and hashlib.sha256(data).hexdigest() != meta["weights_sha256"]:
            raise KshotError(f"checksum mismatch for {tensor_path}: it does not match {json_path.name}")
        tensors = st_load(data)
    state = {k: v for k, v in tensors.items() if not k.startswith(OPTIM)}
    optim = None
    if "optimizer" in meta:
        per_param: dict[int, dict] = {}
        for k, v in tensors.items():
            if k.startswith(OPTIM):
                idx, key = k[len(OPTIM) :].split(".", 1)
                per_param.setdefault(int(idx), {})[key] = v
        for k, v in meta["optimizer"]["scalars"].items():
            idx, key = k.split(".", 1)
            per_param.setdefault(int(idx), {})[key] = v
        optim = {"state": dict(sorted(per_param.items())), "param_groups": meta["optimizer"]["param_groups"]}
    return state, meta, optim


def check_model_dir(path, model_file: str, fmt: str, what: str, how: str, kind: str | None = None) -> Path:
    """The checkpoint prefix ``path/model_file`` of a model directory whose JSON says ``"format": fmt``;
    a KshotError naming ``path`` when it is not one (``what``: e.g. "kshot tagger"; ``how``: how to make one;
    ``kind``: what a model of another format is not, default ``what``)."""
    path = Path(path)
    meta_file = path / f"{model_file}.json"
    if not path.is_dir() or not meta_file.is_file():
        raise KshotError(f"{path} is not a {what} directory (no {model_file}.json); make one with {how}")
    try:
        found = json.loads(meta_file.read_text()).get("format")
    except (json.JSONDecodeError, AttributeError):
        found = None
    if found != fmt:
        raise KshotError(f"{meta_file} is not a {kind or what} (format {found!r})")
    return path / model_file
