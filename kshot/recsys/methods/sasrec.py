"""``sasrec``: a SASRec-style self-attentive ranker (Kang & McAuley, ICDM 2018) over the new user's first K
items in time order: learned position embeddings, two pre-norm Transformer layers with a causal mask; the
state at the last support item scores the catalogue (``sequence.SequenceNet``). Trained on the warm users'
prefixes with a listwise softmax loss over their later liked items (``neural_rank``)."""

import torch
from torch import nn

from .sequence import SequenceNet, SequenceRanker


class SASRecNet(SequenceNet):
    def __init__(self, item_features, user_dim, base, known, emb, max_len, layers: int = 2, heads: int = 2):
        layer = nn.TransformerEncoderLayer(emb, heads, 2 * emb, dropout=0.2, batch_first=True, norm_first=True)
        super().__init__(
            item_features, user_dim, base, known, emb, nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        )
        self.position = nn.Embedding(max_len + 1, emb)
        nn.init.normal_(self.position.weight, std=0.01)

    def encode(self, tokens):
        n = tokens.shape[1]
        causal = torch.triu(torch.full((n, n), float("-inf")), 1)
        return self.encoder(tokens + self.position.weight[:n], mask=causal)


class SASRec(SequenceRanker):
    name = "sasrec"

    def net_class(self):
        return SASRecNet
