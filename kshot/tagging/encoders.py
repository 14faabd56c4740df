"""Token encoders: sentences (lists of words) -> one vector per word.

``TokenEncoder`` runs the transformer under the packaged sentence encoder (``kshot.text.SentenceEncoder``
loads it: all-MiniLM-L6-v2 from the offline package when installed). A word's vector is its FIRST
sub-word's output (``pooling="first"``, default) or the MEAN of its sub-words (``pooling="mean"``), from
the mean of the last ``layers`` hidden layers, L2-normalised. MiniLM is uncased, so ``shape=True`` appends
a few word-shape features (capitalised, all caps, digits, @mention, #hashtag, URL, punctuation), scaled
by ``shape_weight``.

Sentences longer than the window (the encoder's maximum sequence length, or ``window`` sub-words) are
split into overlapping windows: each word is encoded in the window where it is in the core (the middle
half), with up to a quarter window of context on each side; nothing is truncated. (One word longer than
a whole window keeps its first sub-words.) A frozen encoder caches each sentence's vectors.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..text.encoder import DEFAULT_MODEL, SentenceEncoder

SHAPE_DIM = 7
_CACHE: dict[tuple, np.ndarray] = {}


def word_shape(word: str) -> list[float]:
    letters = [c for c in word if c.isalpha()]
    return [
        float(bool(letters) and letters[0].isupper()),
        float(len(letters) > 1 and all(c.isupper() for c in letters)),
        float(any(c.isdigit() for c in word)),
        float(word.startswith("@")),
        float(word.startswith("#")),
        float(word.lower().startswith(("http", "www."))),
        float(not any(c.isalnum() for c in word)),
    ]


def windows(lengths: list[int], limit: int) -> list[tuple[int, int, int, int]]:
    """Split words with ``lengths`` sub-words into windows of at most ``limit`` sub-words:
    ``(start, core_start, core_end, end)`` word indices; the cores partition the sentence."""
    if sum(lengths) <= limit:
        return [(0, 0, len(lengths), len(lengths))]
    out, i, n = [], 0, len(lengths)
    core_budget, side = max(1, limit // 2), max(0, limit // 4)
    while i < n:
        j, used = i, 0
        while j < n and (j == i or used + lengths[j] <= core_budget):
            used += lengths[j]
            j += 1
        start, left = i, 0
        while start > 0 and left + lengths[start - 1] <= side:
            start -= 1
            left += lengths[start]
        end, right = j, limit - used - left
        while end < n and lengths[end] <= right:
            right -= lengths[end]
            end += 1
        out.append((start, i, j, end))
        i = j
    return out


class TokenEncoder:
    """Words -> vectors with the sentence encoder's transformer (see the module docstring)."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        pooling: str = "first",
        layers: int = 1,
        shape: bool = True,
        shape_weight: float = 0.5,
        window: int | None = None,
        device: str = "cpu",
        batch_size: int = 32,
        _sentence: SentenceEncoder | None = None,
    ):
        from ..core.errors import check_choice

        self.model_name, self.pooling = str(model), check_choice("pooling", pooling, ("first", "mean"))
        self.layers, self.shape, self.shape_weight = int(layers), bool(shape), float(shape_weight)
        self.device, self.batch_size = device, batch_size
        self.sentence = _sentence or SentenceEncoder(model, device=device)
        st = self.sentence.model
        self.transformer, self.tokenizer = st[0].auto_model, st.tokenizer
        self.window = int(window or st.max_seq_length)
        self._pieces: dict[str, list[int]] = {}

    def config(self) -> dict:
        return {
            "model": self.model_name,
            "pooling": self.pooling,
            "layers": self.layers,
            "shape": self.shape,
            "shape_weight": self.shape_weight,
            "window": self.window,
        }

    @property
    def frozen(self) -> bool:
        return self.sentence.frozen

    @property
    def dim(self) -> int:
        return int(self.transformer.config.hidden_size) + (SHAPE_DIM if self.shape else 0)

    def trainable(self) -> "TokenEncoder":
        """A private copy whose transformer weights may change (its outputs are not cached)."""
        cfg = self.config()
        return TokenEncoder(
            cfg.pop("model"), device=self.device, batch_size=self.batch_size, _sentence=self.sentence.trainable(), **cfg
        )

    def parameters(self) -> list[torch.nn.Parameter]:
        return self.sentence.tunable_parameters()

    def _word_pieces(self, word: str) -> list[int]:
        if word not in self._pieces:
            ids = self.tokenizer.convert_tokens_to_ids(self.tokenizer.tokenize(word))
            self._pieces[word] = ids or [self.tokenizer.unk_token_id]
        return self._pieces[word]

    def forward(self, sentences: list[list[str]]) -> list[torch.Tensor]:
        """Word vectors ``[len(sentence), dim]`` for each sentence, with gradients when trainable."""
        limit = self.window - 2
        pieces, jobs = [], []  # jobs: (sentence, core word range, piece index, offset of each core word)
        for s, words in enumerate(sentences):
            ids = [self._word_pieces(w)[:limit] for w in words]
            for start, c0, c1, end in windows([len(x) for x in ids], limit):
                seq, offsets = [self.tokenizer.cls_token_id], []
                for w in range(start, end):
                    offsets.append((len(seq), len(seq) + len(ids[w])))
                    seq.extend(ids[w])
                seq.append(self.tokenizer.sep_token_id)
                jobs.append((s, c0, c1, len(pieces), offsets[c0 - start : c1 - start]))
                pieces.append(seq)
        hidden = self._run(pieces)
        parts: list[list[torch.Tensor]] = [[] for _ in sentences]
        for s, c0, c1, p, offsets in jobs:
            h = hidden[p]
            if self.pooling == "first":
                vec = h[[a for a, _ in offsets]]
            else:
                vec = torch.stack([h[a:b].mean(0) for a, b in offsets])
            parts[s].append(vec)
        out = []
        for words, vecs in zip(sentences, parts):
            v = F.normalize(torch.cat(vecs), dim=-1)
            if self.shape:
                v = torch.cat(
                    [
                        v,
                        self.shape_weight
                        * torch.tensor([word_shape(w) for w in words], dtype=v.dtype, device=v.device),
                    ],
                    -1,
                )
            out.append(v)
        return out

    def _run(self, pieces: list[list[int]]) -> list[torch.Tensor]:
        width = max(len(p) for p in pieces)
        ids = torch.zeros(len(pieces), width, dtype=torch.long)
        mask = torch.zeros(len(pieces), width, dtype=torch.long)
        for i, p in enumerate(pieces):
            ids[i, : len(p)] = torch.tensor(p)
            mask[i, : len(p)] = 1
        out = self.transformer(
            input_ids=ids.to(self.device), attention_mask=mask.to(self.device), output_hidden_states=self.layers > 1
        )
        h = out.last_hidden_state if self.layers == 1 else torch.stack(out.hidden_states[-self.layers :]).mean(0)
        return list(h)

    def encode(self, sentences: list[list[str]], progress: bool = False) -> list[np.ndarray]:
        """Word vectors (float32 arrays) of each sentence; cached for a frozen encoder."""
        from ..core.progress import progress_bar

        key = (self.sentence.key, *self.config().values())
        keys = [(key, tuple(s)) for s in sentences]
        todo = list(dict.fromkeys(k for k in keys if not self.frozen or k not in _CACHE))
        result = {}
        order = sorted(range(len(todo)), key=lambda i: -len(todo[i][1]))
        was_training = self.transformer.training
        self.transformer.eval()
        with torch.inference_mode(), progress_bar(len(todo), "encoding", progress) as advance:
            for b in range(0, len(order), self.batch_size):
                batch = [todo[i] for i in order[b : b + self.batch_size]]
                for k, v in zip(batch, self.forward([list(k[1]) for k in batch])):
                    result[k] = v.float().cpu().numpy()
                advance(len(batch))
        self.transformer.train(was_training)
        if self.frozen:
            _CACHE.update(result)
            return [_CACHE[k] for k in keys]
        return [result[k] for k in keys]
