"""FewShotTagger: tag new entity types from a few annotated sentences (scikit-learn conventions).

    tagger = FewShotTagger().fit(sentences, tags)                        # lists of tokens, BIO tags
    tagger.predict(["Watching Stranger Things with @bob in Paris"])      # raw strings are tokenised
    tagger.predict_entities([...])   # [{"start", "end", "type", "text", "score"}, ...] per sentence

Methods (kshot/tagging/methods/, one file each): ``span`` (the default: a type-agnostic span detector
fine-tuned on the support set, then a span typer of prototypes with the types' descriptions and a ``none``
class; ``source=`` trains both stages on another corpus first), ``proto`` (nearest tag prototype),
``nnshot`` (nearest support word), ``structshot`` (nnshot + Viterbi over abstract transitions),
``finetune`` (transformer + linear head; ``crf=True`` adds a CRF) and ``episodic`` (a ``backbone`` BiLSTM /
BiGRU / Transformer over the frozen word vectors, trained episodically with a prototypical loss). Every
method returns entities, given as BIO. ``get_params`` / ``set_params`` come from the signature
(``kshot.core.estimator``: ``sklearn.base.clone`` works), and a parameter set for a method that does not
use it is an error. ``save``/``load`` write safetensors + JSON only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import KshotError, check_choice, check_positive_int, is_number
from ..core.estimator import Estimator
from ..core.model_format import load_model, save_model
from ..text.encoder import DEFAULT_MODEL, SentenceEncoder
from .encoders import TokenEncoder
from .io import check_tag, spans, tag_type, tokenize
from .methods import METHODS
from .sampling import fewnerd_episode, only_types

KIND = "tagger"
ENCODER_PARAMS = ("pooling", "layers", "shape", "shape_weight", "window")
#: the tagger's parameters each method takes (None: the method's own default)
METHOD_ARGS = {
    "proto": ("scale",),
    "nnshot": ("scale",),
    "structshot": ("tau", "scale"),
    "finetune": ("steps", "lr", "crf", "seed"),
    "episodic": ("backbone", "steps", "lr", "scale", "seed"),
    "span": (
        "steps",
        "lr",
        "scale",
        "describe",
        "context",
        "none",
        "descriptions",
        "source_steps",
        "pseudo",
        "pool",
        "seed",
    ),
}
SOURCE_METHODS = ("episodic", "span")


def method_params(method: str, p: dict) -> dict:
    """The constructor arguments of ``method`` from the tagger's parameters (None: the method default)."""
    return {k: p[k] for k in METHOD_ARGS[method] if p.get(k) is not None}


def as_tokens(sentences) -> list[list[str]]:
    """Lists of tokens, raw strings tokenised; a KshotError for an empty sentence."""
    if isinstance(sentences, str):
        raise KshotError(f"sentences must be a list (of strings or token lists), got one string {sentences[:40]!r}")
    out = []
    for i, s in enumerate(sentences):
        toks = tokenize(s) if isinstance(s, str) else [str(t) for t in s]
        if not toks or not all(t.strip() for t in toks):
            raise KshotError(f"sentence {i} is empty or has an empty token; every sentence needs tokens")
        out.append(toks)
    return out


class FewShotTagger(Estimator):
    """Few-shot sequence labelling (see the module docstring). Parameters that belong to some methods only
    (``method_params``) are an error with another method when set away from their default."""

    method_params = {
        name: tuple(m for m, args in METHOD_ARGS.items() if name in args)
        for name in dict.fromkeys(a for args in METHOD_ARGS.values() for a in args if a != "seed")
    }

    def __init__(
        self,
        method: str = "span",
        encoder: str = DEFAULT_MODEL,
        backbone: str = "lstm",
        crf: bool = False,
        steps: int | None = None,
        lr: float | None = None,
        tau: float | None = None,
        scale: float | None = None,
        describe: float | None = None,
        context: float | None = None,
        none: bool | None = None,
        descriptions: dict | None = None,
        source_steps: int | None = None,
        pseudo: float | None = None,
        pool: int | None = None,
        pooling: str = "mean",
        layers: int = 4,
        shape: bool = True,
        shape_weight: float = 0.5,
        window: int | None = None,
        seed: int = 0,
        device: str = "cpu",
        progress: bool = False,
    ):
        self.method, self.encoder, self.backbone, self.crf = method, encoder, backbone, crf
        self.steps, self.lr, self.tau, self.scale = steps, lr, tau, scale
        self.describe, self.context, self.none, self.descriptions = describe, context, none, descriptions
        self.source_steps, self.pseudo, self.pool = source_steps, pseudo, pool
        self.pooling, self.layers, self.shape = pooling, layers, shape
        self.shape_weight, self.window = shape_weight, window
        self.seed, self.device, self.progress = seed, device, progress

    def _token_encoder(self, sentence: SentenceEncoder | None = None) -> TokenEncoder:
        return TokenEncoder(
            self.encoder, device=self.device, _sentence=sentence, **{k: getattr(self, k) for k in ENCODER_PARAMS}
        )

    def _check_params(self) -> None:
        check_choice("method", self.method, METHODS)
        self.check_method_params()
        if self.pseudo is not None and not (is_number(self.pseudo) and 0 <= self.pseudo <= 1):
            raise KshotError(f"pseudo must be a probability between 0 and 1, got {self.pseudo!r}")
        if self.pool is not None:
            check_positive_int("pool", self.pool)
        if self.descriptions is not None and not (
            isinstance(self.descriptions, dict)
            and all(isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in self.descriptions.items())
        ):
            raise KshotError(f"descriptions must map entity types to non-empty texts, got {self.descriptions!r}")

    # ---------------------------------------------------------------- fitting
    def _labels(self, tags) -> list[np.ndarray]:
        index = {t: i for i, t in enumerate(["O"] + self.types_)}
        return [np.array([index[tag_type(t)] for t in ts], dtype=np.int64) for ts in tags]

    def _spans(self, tags, types) -> list[list[tuple[int, int, int]]]:
        index = {t: i for i, t in enumerate(types, 1)}
        return [[(a, b, index[k]) for a, b, k in spans(ts) if k in index] for ts in tags]

    def fit(self, sentences, tags, types=None, source=None, unlabeled=None) -> "FewShotTagger":
        """Fit on ``sentences`` (token lists or raw strings) and their BIO/IO ``tags``; returns self.

        ``types``: the entity types to learn (others become O); each must occur in ``tags``.
        ``source`` (methods ``span`` and ``episodic``): ``(sentences, tags)`` of another corpus whose entity
        types all differ from these: ``span`` fine-tunes its detector on it and trains its typer on span
        episodes of its types, ``episodic`` trains its backbone on N-way K~2K episodes of it, before the
        fit on this support set.
        ``unlabeled`` (method ``span``): sentences without tags from the same kind of text (token lists or
        raw strings): the tagger tags up to ``pool`` of them, takes the entities it types with probability
        >= ``pseudo`` as extra examples and fits again (self-training)."""
        self._check_params()
        sentences, tags = self._check_xy(sentences, tags)
        found = sorted({tag_type(t) for ts in tags for t in ts if t != "O"})
        if not found:
            raise KshotError("the training sentences have no entities; tag at least one entity per type")
        if types is not None:
            missing = sorted(set(types) - set(found))
            if missing:
                raise KshotError(
                    f"the training sentences have no entity of type(s) {', '.join(missing)} "
                    f"(types found: {', '.join(found)})"
                )
            tags = only_types(tags, types)
            found = sorted(set(types))
        self.types_ = found
        if unlabeled is not None and self.method != "span":
            raise KshotError(f"unlabeled sentences train the method span, not {self.method!r}")
        if unlabeled is not None:
            unlabeled = as_tokens(unlabeled)
        if source is not None and self.method not in SOURCE_METHODS:
            raise KshotError(f"a source corpus trains the methods {', '.join(SOURCE_METHODS)}, not {self.method!r}")
        encoder = self._token_encoder()
        params = method_params(self.method, self.get_params())
        if self.method == "span":
            params["type_names"] = list(self.types_)
        self.method_ = METHODS[self.method](**params)
        self.method_.progress = self.progress
        labels = self._labels(tags)
        n_classes = len(self.types_) + 1
        if self.method == "span":
            src = None if source is None else self._span_source(*source)
            self.method_.fit(
                encoder,
                sentences,
                labels,
                n_classes,
                spans=self._spans(tags, self.types_),
                source=src,
                unlabeled=unlabeled,
            )
        elif source is not None:
            self.method_.fit(encoder, sentences, labels, n_classes, source=self._source(*source))
        else:
            self.method_.fit(encoder, sentences, labels, n_classes)
        self.encoder_ = getattr(self.method_, "encoder", None) or encoder
        return self

    def _source_types(self, tags) -> list[str]:
        types = sorted({tag_type(t) for ts in tags for t in ts if t != "O"})
        if not types:
            raise KshotError("the source corpus has no entities")
        shared = sorted(set(types) & set(self.types_))
        if shared:
            raise KshotError(
                f"the source corpus has the target's own type(s) {', '.join(shared)}; a source must "
                f"have other entity types (its types: {', '.join(types)})"
            )
        return types

    def _span_source(self, sentences, tags):
        """A source corpus for the span method: (sentences, entities per sentence, its type names)."""
        sentences, tags = self._check_xy(sentences, tags)
        types = self._source_types(tags)
        return sentences, self._spans(tags, types), types

    def _source(self, sentences, tags, way: int = 3, shots: int = 2):
        """A source corpus for episodic training: (sentences, labels, classes, episodes), each episode
        ``(support indices, query indices, its classes)``; the other types count as O in it."""
        sentences, tags = self._check_xy(sentences, tags)
        types = self._source_types(tags)
        index = {t: i for i, t in enumerate(["O"] + types)}
        labels = [np.array([index[tag_type(t)] for t in ts]) for ts in tags]
        way = min(way, len(types))

        def episodes():
            for i in range(10**9):
                s, q, chosen = fewnerd_episode(tags, way, shots, seed=self.seed * 100003 + i, types=types)
                if s and q:
                    yield s, q, [index[t] for t in chosen]

        return sentences, labels, len(types) + 1, episodes()

    def _check_xy(self, sentences, tags):
        sentences = as_tokens(sentences)
        tags = [list(t) for t in tags]
        if not sentences:
            raise KshotError("the training set is empty; give at least one tagged sentence")
        if len(sentences) != len(tags):
            raise KshotError(f"got {len(sentences)} sentences but {len(tags)} tag sequences")
        for i, (s, t) in enumerate(zip(sentences, tags)):
            if len(s) != len(t):
                raise KshotError(f"sentence {i} has {len(s)} tokens but {len(t)} tags; give one tag per token")
            for tag in t:
                check_tag(str(tag), f"sentence {i}")
        return sentences, tags

    # ------------------------------------------------------------- prediction
    def _fitted(self) -> None:
        if not hasattr(self, "method_"):
            raise KshotError("this FewShotTagger is not fitted yet; call fit(sentences, tags) first")

    def _decode(self, sentences):
        """(tokens, scores, entities ``(start, end, class)``) of each sentence."""
        self._fitted()
        sentences = as_tokens(sentences)
        if not sentences:
            return sentences, [], []
        scores, entities = self.method_.tag(self.encoder_, sentences, progress=self.progress)
        return sentences, scores, entities

    def predict(self, sentences) -> list[list[str]]:
        """BIO tags for each sentence (token lists, or raw strings tokenised by ``io.tokenize``)."""
        tokens, _, entities = self._decode(sentences)
        out = []
        for toks, ents in zip(tokens, entities):
            tags = ["O"] * len(toks)
            for a, b, c in ents:
                tags[a:b] = [f"B-{self.types_[c - 1]}"] + [f"I-{self.types_[c - 1]}"] * (b - a - 1)
            out.append(tags)
        return out

    def predict_entities(self, sentences) -> list[list[dict]]:
        """Entities of each sentence: ``start``, ``end`` (exclusive) token indices, ``type``, ``text`` and
        ``score`` (the mean probability of the entity's class over its tokens)."""
        tokens, scores, entities = self._decode(sentences)
        return [
            [
                {
                    "start": a,
                    "end": b,
                    "type": self.types_[c - 1],
                    "text": " ".join(toks[a:b]),
                    "score": float(s[a:b, c].exp().mean()),
                }
                for a, b, c in ents
            ]
            for toks, s, ents in zip(tokens, scores, entities)
        ]

    def score(self, sentences, tags) -> dict:
        """Entity-level P/R/F1 per type and micro (kshot.tagging.metrics); a KshotError when ``tags`` hold a
        type this tagger was not fitted on."""
        from .metrics import entity_scores

        sentences, tags = self._check_xy(sentences, tags)
        self._fitted()
        unknown = sorted({tag_type(t) for ts in tags for t in ts if t != "O"} - set(self.types_))
        if unknown:
            raise KshotError(
                f"the gold tags hold type(s) {', '.join(unknown)} that this tagger does not know "
                f"(it tags: {', '.join(self.types_)})"
            )
        return entity_scores(tags, self.predict(sentences))

    # -------------------------------------------------------------- save/load
    def save(self, path) -> Path:
        """Write the tagger to the directory ``path`` (safetensors + JSON, no pickle)."""
        self._fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        finetuned = not self.encoder_.frozen
        if finetuned:
            self.encoder_.sentence.save(path / "encoder")
        return save_model(
            path,
            KIND,
            self.method_.state(),
            self.get_params(),
            {"types": self.types_, "finetuned": finetuned, "method_params": self.method_.params},
        )

    @classmethod
    def load(cls, path, device: str | None = None) -> "FewShotTagger":
        """A saved tagger, on ``device`` (default: the one it was fitted on)."""
        state, meta = load_model(path, KIND)
        tagger = cls(**{**meta["params"], **({"device": device} if device is not None else {})})
        tagger.types_ = list(meta["types"])
        sentence = (
            SentenceEncoder.load_finetuned(Path(path) / "encoder", tagger.encoder, tagger.device)
            if meta["finetuned"]
            else None
        )
        tagger.encoder_ = tagger._token_encoder(sentence)
        tagger.method_ = METHODS[tagger.method](**meta["method_params"]).load_state(state, tagger.encoder_)
        return tagger


__all__ = ["FewShotTagger", "METHODS"]
