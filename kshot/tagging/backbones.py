"""Trainable sequence models over frozen word vectors: BiLSTM, BiGRU and a small Transformer encoder.

``SequenceBackbone(kind, dim)`` maps ``[B, L, dim]`` word vectors (the frozen transformer's outputs) to
``[B, L, dim]``: ``x + W f(x)`` with ``W`` zero-initialised, so an untrained backbone is the identity
and episodic training starts from the frozen encoder's geometry.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.errors import check_choice

KINDS = ("lstm", "gru", "transformer")


class SequenceBackbone(nn.Module):
    def __init__(
        self,
        kind: str = "lstm",
        dim: int = 384,
        hidden: int = 128,
        layers: int = 1,
        heads: int = 4,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.kind = check_choice("backbone", kind, KINDS)
        self.config = {"kind": kind, "dim": dim, "hidden": hidden, "layers": layers, "heads": heads, "dropout": dropout}
        if kind == "transformer":
            self.inp = nn.Linear(dim, hidden)
            layer = nn.TransformerEncoderLayer(hidden, heads, 2 * hidden, dropout, batch_first=True)
            self.seq = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            width = hidden
        else:
            rnn = nn.LSTM if kind == "lstm" else nn.GRU
            self.seq = rnn(dim, hidden, layers, batch_first=True, bidirectional=True)
            width = 2 * hidden
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(width, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` [B, L, dim], ``mask`` [B, L] (True for real words) -> [B, L, dim]."""
        if self.kind == "transformer":
            h = self.seq(self.inp(x), src_key_padding_mask=None if mask is None else ~mask)
        else:
            h = self.seq(x)[0]
        return x + self.out(self.drop(h))

    def encode(self, vectors: list[torch.Tensor]) -> list[torch.Tensor]:
        """Sentences of different lengths -> their outputs, one tensor per sentence."""
        lengths = [len(v) for v in vectors]
        x = nn.utils.rnn.pad_sequence(vectors, batch_first=True)
        mask = torch.arange(x.shape[1])[None] < torch.tensor(lengths)[:, None]
        y = self(x, mask)
        return [y[i, :n] for i, n in enumerate(lengths)]
