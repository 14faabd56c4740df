"""``gru``: a GRU4Rec-style recurrent ranker (Hidasi et al., ICLR 2016) over the new user's first K items in
time order: one GRU layer reads the start token (user features) and the items with their ratings; its last
state scores the catalogue (``sequence.SequenceNet``). Trained on the warm users' prefixes with a listwise
softmax loss over their later liked items (``neural_rank``)."""

from torch import nn

from .sequence import SequenceNet, SequenceRanker


class GRUNet(SequenceNet):
    def __init__(self, item_features, user_dim, base, known, emb, max_len):
        super().__init__(item_features, user_dim, base, known, emb, nn.GRU(emb, emb, batch_first=True))

    def encode(self, tokens):
        return self.encoder(tokens)[0]


class GRURanker(SequenceRanker):
    name = "gru"

    def net_class(self):
        return GRUNet
