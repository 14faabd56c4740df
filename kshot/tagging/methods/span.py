"""Find the spans, then type them (two stages, as DecomposedMetaNER, Ma et al. 2022; ESD, SpanProto).

Stage 1, the detector: the transformer with a linear head over two classes (outside / inside an entity)
and a CRF, type-agnostic (every support entity is just an entity, so all of them teach it what a name
looks like), fine-tuned on the support set (``FineTune``); Viterbi gives the spans. (Two classes found
more spans than B / I / O on WNUT-17: 41 vs 33 F1, one support set.)

Stage 2, the typer: a span is (a) the frozen sentence encoder's embedding of its text, which knows that
"iPhone" is a product and "Drake" a person, and (b) its boundary words and mean ``[start; end; mean]`` in
the detector's encoder (its context). Per type, the support spans' prototypes (``core.prototypes``) plus
the type's name and description (kshot/tagging/descriptions.py) as an extra example, "label semantics":

    logit_t = describe x cos(text, description_t) + (1 - describe) x cos(text, prototype_t)
              + context x cos(span context, context prototype_t)

and with ``none=True`` a ``none`` class (the support's words outside entities, with its own description)
that drops a span at typing. Probabilities are the softmax of ``scale x logit``.

``unlabeled``: sentences of the same kind of text without tags (self-training, as in Huang et al. 2020,
"Few-Shot NER: A Comprehensive Study"): the fitted tagger tags ``pool`` of them, keeps the sentences whose
every entity it types with probability >= ``pseudo``, and both stages are fitted again from the start on the
support plus these (the support repeated to stay half of the detector's data; the kept entities' mean
weighs ``PSEUDO_WEIGHT`` against the support's in each type's prototype). One round: on the WNUT-17 dev
file, a second round, a pool of 3,000 or a weight of 1 did no better.

``source``: another corpus whose entity types differ: the detector is first fine-tuned on its sentences
(every type an entity) for ``source_steps`` steps, and a residual map of the span-text embeddings
(``x + W x``, ``W`` zero at the start) is trained on N-way K-shot span episodes of its types with this
typer's loss (descriptions included), then used for the target's types.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...core.loop import run_steps
from ...core.prototypes import class_means, cosine_logits
from ..descriptions import describe as describe_type
from .base import TagMethod, io_runs
from .finetune import FineTune

#: weight of the pseudo-labelled spans' mean against the support's in a type's prototypes (self-training)
PSEUDO_WEIGHT = 0.5


def entity_ids(spans_of: list[list[tuple[int, int, int]]], lengths: list[int]) -> list[np.ndarray]:
    """Type-agnostic labels of sentences from their spans ``(start, end, class)``: 1 inside an entity."""
    out = []
    for sp, n in zip(spans_of, lengths):
        y = np.zeros(n, dtype=np.int64)
        for a, b, _ in sp:
            y[a:b] = 1
        out.append(y)
    return out


class SpanTyperMap(torch.nn.Module):
    """``x + W x`` with ``W`` zero at the start (the identity until source episodes train it)."""

    def __init__(self, dim: int):
        super().__init__()
        self.lin = torch.nn.Linear(dim, dim, bias=False)
        torch.nn.init.zeros_(self.lin.weight)

    def forward(self, x):
        return F.normalize(x + self.lin(x), dim=-1)


class SpanTagger(TagMethod):
    name = "span"
    frozen = False

    def __init__(
        self,
        steps: int = 60,
        lr: float = 5e-5,
        head_lr: float = 1e-3,
        batch_size: int = 16,
        describe: float = 0.5,
        context: float = 1.0,
        none: bool = True,
        scale: float = 20.0,
        descriptions: dict | None = None,
        type_names: list | None = None,
        source_steps: int = 200,
        pseudo: float = 0.5,
        pool: int = 1000,
        seed: int = 0,
    ):
        super().__init__(
            steps=steps,
            lr=lr,
            head_lr=head_lr,
            batch_size=batch_size,
            describe=describe,
            context=context,
            none=none,
            scale=scale,
            descriptions=descriptions,
            type_names=type_names,
            source_steps=source_steps,
            pseudo=pseudo,
            pool=pool,
            seed=seed,
        )
        self.progress = False

    # ------------------------------------------------------------------ pieces
    def _detector(self, steps: int) -> FineTune:
        p = self.params
        det = FineTune(
            steps=steps, lr=p["lr"], head_lr=p["head_lr"], batch_size=p["batch_size"], crf=True, seed=p["seed"]
        )
        det.progress = self.progress
        return det

    def _vectors(self, sentences, progress=False) -> list[torch.Tensor]:
        """The detector encoder's word vectors of each sentence (no gradients), in batches of sentences of
        similar length (little padding)."""
        from ...core.progress import progress_bar

        order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i]))
        out: list = [None] * len(sentences)
        with torch.no_grad(), progress_bar(len(sentences), "tagging", progress) as advance:
            for b in range(0, len(order), 32):
                batch = order[b : b + 32]
                for i, v in zip(batch, self.encoder.forward([sentences[i] for i in batch])):
                    out[i] = v.float()
                advance(len(batch))
        return out

    def _texts(self, texts: list[str]) -> torch.Tensor:
        if not texts:
            return torch.zeros(0, self.sentence.dim)
        return torch.from_numpy(np.asarray(self.sentence.encode(texts))).float()

    @staticmethod
    def _context(v: torch.Tensor, a: int, b: int) -> torch.Tensor:
        return F.normalize(torch.cat([v[a], v[b - 1], v[a:b].mean(0)]), dim=0)

    def _descriptions(self, names) -> torch.Tensor:
        return self._texts([describe_type(n, self.params["descriptions"]) for n in names])

    # ------------------------------------------------------------------ fitting
    def fit(self, encoder, sentences, labels, n_classes, spans=None, source=None, unlabeled=None):
        """``spans``: the support's entities ``(start, end, class 1..N)`` per sentence (the tagger gives
        them from the BIO tags; from ``labels`` otherwise); ``source``: ``(sentences, spans, type names)``
        of another corpus."""
        p = self.params
        torch.manual_seed(p["seed"])
        names = list(p["type_names"] or [f"type {c}" for c in range(1, n_classes)])
        if spans is None:
            from ..io import spans as io_spans

            spans = [[(a, b, int(k)) for a, b, k in io_spans([str(t) if t else "O" for t in y])] for y in labels]
        self.sentence = encoder.sentence
        start = encoder
        self.map = None
        if source is not None:
            src_sents, src_spans, src_names = source
            pre = self._detector(p["source_steps"]).fit(
                encoder, src_sents, entity_ids(src_spans, [len(s) for s in src_sents]), 2
            )
            start = pre.encoder
            self.map = self._train_map(src_sents, src_spans, src_names)
        self._fit_stages(start, sentences, spans, names)
        if unlabeled:
            self._self_train(start, sentences, spans, names, unlabeled)
        return self

    def _fit_stages(self, start, sentences, spans, names, extra=None):
        """The detector fine-tuned from ``start`` and the typer's prototypes on the support set; ``extra``:
        pseudo-labelled ``(sentences, spans)`` added to both, the support repeated to stay half the
        detector's data, their spans weighing ``PSEUDO_WEIGHT`` against the support's in the prototypes."""
        p = self.params
        det_sents, det_spans = list(sentences), list(spans)
        if extra:
            reps = max(1, round(len(extra[0]) / len(sentences)))
            det_sents, det_spans = det_sents * reps + list(extra[0]), det_spans * reps + list(extra[1])
        self.detector = self._detector(p["steps"]).fit(
            start, det_sents, entity_ids(det_spans, [len(s) for s in det_sents]), 2
        )
        self.encoder = self.detector.encoder
        texts, ctx, ys = self._examples(sentences, spans, outside=True)
        n = len(names) + 1  # class 0 = none
        text_protos = class_means(self._project(self._texts(texts)), torch.tensor(ys), n)
        ctx_protos = class_means(torch.stack(ctx), torch.tensor(ys), n)
        if extra:
            texts, ctx, ys = self._examples(*extra, outside=False)
            y = torch.tensor(ys)
            w = PSEUDO_WEIGHT * torch.bincount(y, minlength=n).clamp(max=1).unsqueeze(1).float()
            text_protos = (text_protos + w * class_means(self._project(self._texts(texts)), y, n)) / (1 + w)
            ctx_protos = (ctx_protos + w * class_means(torch.stack(ctx), y, n)) / (1 + w)
        self.text_protos = F.normalize(text_protos, dim=-1)
        self.context_protos = F.normalize(ctx_protos, dim=-1)
        self.desc = self._project(self._descriptions(["none"] + names))

    def _examples(self, sentences, spans, outside: bool):
        """The typer's examples: (span texts, span contexts, classes), the support's words outside entities
        as class 0 (none) with ``outside``."""
        texts, ctx, ys = [], [], []
        for words, v, sp in zip(sentences, self._vectors(sentences), spans):
            inside = np.zeros(len(words), dtype=bool)
            for a, b, k in sp:
                texts.append(" ".join(words[a:b]))
                ctx.append(self._context(v, a, b))
                ys.append(int(k))
                inside[a:b] = True
            if outside:
                for i, w in enumerate(words):
                    if not inside[i] and any(c.isalnum() for c in w):
                        texts.append(w)
                        ctx.append(self._context(v, i, i + 1))
                        ys.append(0)
        return texts, ctx, ys

    def _self_train(self, start, sentences, spans, names, unlabeled):
        """One round of self-training: tag up to ``pool`` unlabelled sentences, keep those whose every
        entity is typed with probability >= ``pseudo`` (at least one entity), and fit both stages again on
        the support plus these."""
        p = self.params
        rng = np.random.default_rng(p["seed"])
        pool = [unlabeled[i] for i in rng.permutation(len(unlabeled))[: p["pool"]]]
        scores, entities = self.tag(None, pool, progress=self.progress)
        keep_s, keep_sp = [], []
        for words, sc, ents in zip(pool, scores, entities):
            if ents and all(float(sc[a, c].exp()) >= p["pseudo"] for a, b, c in ents):
                keep_s.append(words)
                keep_sp.append(ents)
        self.pseudo_count = len(keep_s)
        if keep_s:
            self._fit_stages(start, sentences, spans, names, extra=(keep_s, keep_sp))

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        if self.map is None:
            return F.normalize(x, dim=-1)
        with torch.no_grad():
            return self.map(x)

    def _logits(self, text: torch.Tensor, ctx: torch.Tensor, text_protos, desc, ctx_protos) -> torch.Tensor:
        p = self.params
        ctx_logits = cosine_logits(ctx, ctx_protos, 1.0)
        # the detector's encoder puts every found span far from the words outside entities, so the none
        # class is judged on the span's text alone: its context term is the best type's
        ctx_logits[:, 0] = ctx_logits[:, 1:].max(-1).values
        return (
            p["describe"] * cosine_logits(text, desc, 1.0)
            + (1 - p["describe"]) * cosine_logits(text, text_protos, 1.0)
            + p["context"] * ctx_logits
        )

    def _train_map(self, sentences, spans, names, way: int = 3, shots: int = 2, queries: int = 4):
        """The residual map of span-text embeddings, trained on ``way``-way ``shots``-shot episodes of the
        source's spans (prototypes with the types' descriptions, no context term)."""
        p = self.params
        texts, ys = zip(*[(" ".join(w[a:b]), k) for w, sp in zip(sentences, spans) for a, b, k in sp])
        X, y = self._texts(list(texts)), torch.tensor(ys)
        D = self._descriptions(names)  # class k (1..N) -> row k - 1
        classes = [k for k in range(1, len(names) + 1) if int((y == k).sum()) > shots]
        way = min(way, len(classes))
        net = SpanTyperMap(X.shape[1])
        rng = np.random.default_rng(p["seed"])

        def step_loss(step):
            chosen = rng.choice(classes, size=way, replace=False)
            s_idx, q_idx, s_y, q_y = [], [], [], []
            for j, k in enumerate(chosen):
                rows = rng.permutation(np.flatnonzero(y.numpy() == k))
                s_idx += rows[:shots].tolist()
                q_idx += rows[shots : shots + queries].tolist()
                s_y += [j] * shots
                q_y += [j] * len(rows[shots : shots + queries])
            Z, Dz = net(X), net(D[torch.as_tensor(chosen) - 1])
            protos = F.normalize(class_means(Z[s_idx], torch.tensor(s_y), way), dim=-1)
            logits = p["describe"] * cosine_logits(Z[q_idx], Dz, 1.0) + (1 - p["describe"]) * cosine_logits(
                Z[q_idx], protos, 1.0
            )
            return F.cross_entropy(p["scale"] * logits, torch.tensor(q_y))

        if way >= 2:
            run_steps(
                [{"params": list(net.parameters()), "lr": 1e-3}],
                p["source_steps"],
                step_loss,
                optimizer="adam",
                schedule="constant",
                clip=None,
                progress=self.progress,
                description="span typer on the source",
            )
        net.eval()
        return net

    # -------------------------------------------------------------- prediction
    def tag(self, encoder, sentences, progress: bool = False):
        """(per-word log-probabilities ``[L, n_classes]``, entities ``(start, end, class)``) per sentence."""
        vectors = self._vectors(sentences, progress)
        found = []
        for v in vectors:
            emissions = self.detector.head(v).log_softmax(-1)
            found.append([(a, b) for a, b, _ in io_runs(self.detector.crf.decode(emissions))])
        texts = [" ".join(w[a:b]) for w, sp in zip(sentences, found) for a, b in sp]
        ctx = [self._context(v, a, b) for v, sp in zip(vectors, found) for a, b in sp]
        n = self.text_protos.shape[0]
        scores = [torch.zeros(len(w), n).index_fill_(1, torch.arange(1, n), float("-inf")) for w in sentences]
        entities = [[] for _ in sentences]
        if texts:
            logits = self._logits(
                self._project(self._texts(texts)), torch.stack(ctx), self.text_protos, self.desc, self.context_protos
            )
            if not self.params["none"]:
                logits[:, 0] = float("-inf")
            logp = (self.params["scale"] * logits).log_softmax(-1)
            j = 0
            for s, sp in enumerate(found):
                for a, b in sp:
                    scores[s][a:b] = logp[j]
                    c = int(logp[j].argmax())
                    if c > 0:
                        entities[s].append((a, b, c))
                    j += 1
        return scores, entities

    def scores(self, encoder, sentences):
        return self.tag(encoder, sentences)[0]

    def decode(self, scores):
        raise NotImplementedError("the span tagger decodes in tag()")

    # -------------------------------------------------------------- save/load
    def state(self):
        out = {
            "text_protos": self.text_protos,
            "context_protos": self.context_protos,
            "desc": self.desc,
            **{f"detector.{k}": v for k, v in self.detector.state().items()},
        }
        if self.map is not None:
            out["map.weight"] = self.map.lin.weight.detach()
        return out

    def load_state(self, state, encoder=None):
        from ...text.encoder import SentenceEncoder

        self.text_protos, self.context_protos, self.desc = state["text_protos"], state["context_protos"], state["desc"]
        self.encoder = encoder
        self.detector = FineTune(crf=True).load_state(
            {k[9:]: v for k, v in state.items() if k.startswith("detector.")}, encoder
        )
        self.sentence = SentenceEncoder(encoder.model_name, device=encoder.device)
        self.map = None
        if "map.weight" in state:
            self.map = SpanTyperMap(state["map.weight"].shape[0])
            self.map.lin.weight.data.copy_(state["map.weight"])
            self.map.eval()
        return self
