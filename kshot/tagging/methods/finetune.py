"""Fine-tuning: the transformer and a linear head over IO tags trained on the support set (cross-entropy,
or a CRF's likelihood with ``crf=True``, then Viterbi). The head starts as the prototype classifier
(weight 2p, bias -|p|^2 for each tag's prototype p), which is what a few dozen steps refine."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...core.loop import run_steps
from ...core.prototypes import class_means
from ..crf import CRF
from .base import TagMethod


class FineTune(TagMethod):
    name = "finetune"
    frozen = False

    def __init__(
        self,
        steps: int = 60,
        lr: float = 5e-5,
        head_lr: float = 1e-3,
        batch_size: int = 16,
        crf: bool = False,
        seed: int = 0,
    ):
        super().__init__(steps=steps, lr=lr, head_lr=head_lr, batch_size=batch_size, crf=crf, seed=seed)

    def _build(self, dim: int, n_classes: int) -> None:
        self.head = torch.nn.Linear(dim, n_classes)
        self.crf = CRF(n_classes) if self.params["crf"] else None

    def fit(self, encoder, sentences, labels, n_classes):
        p = self.params
        torch.manual_seed(p["seed"])
        self.encoder = encoder.trainable()
        self._build(self.encoder.dim, n_classes)
        X = torch.from_numpy(np.concatenate(encoder.encode(sentences)))
        y = torch.from_numpy(np.concatenate(labels)).long()
        protos = class_means(X, y, n_classes)
        with torch.no_grad():
            self.head.weight.copy_(2 * protos)
            self.head.bias.copy_(-protos.pow(2).sum(-1))
        extra = list(self.crf.parameters()) if self.crf is not None else []
        rng = np.random.default_rng(p["seed"])

        def step_loss(step):
            batch = rng.permutation(len(sentences))[: p["batch_size"]]
            emissions = [self.head(v) for v in self.encoder.forward([sentences[i] for i in batch])]
            gold = [torch.as_tensor(labels[i]).long() for i in batch]
            if self.crf is not None:
                return torch.stack([self.crf.nll(e, g) for e, g in zip(emissions, gold)]).mean()
            return F.cross_entropy(torch.cat(emissions), torch.cat(gold))

        self.encoder.transformer.train()
        run_steps(
            [
                {"params": list(self.encoder.parameters()), "lr": p["lr"]},
                {"params": list(self.head.parameters()) + extra, "lr": p["head_lr"]},
            ],
            p["steps"],
            step_loss,
            schedule="constant",
            clip=None,
            description="fine-tuning the tagger",
            progress=getattr(self, "progress", False),
        )
        self.encoder.transformer.eval()
        return self

    def scores(self, encoder, sentences):
        out = []
        with torch.inference_mode():
            for b in range(0, len(sentences), 32):
                out += [self.head(v).log_softmax(-1) for v in self.encoder.forward(sentences[b : b + 32])]
        return out

    def decode(self, scores):
        if self.crf is None:
            return super().decode(scores)
        return [self.crf.decode(s) for s in scores]

    def state(self):
        modules = {"head": self.head} if self.crf is None else {"head": self.head, "crf": self.crf}
        return {f"{m}.{k}": v for m, mod in modules.items() for k, v in mod.state_dict().items()}

    def load_state(self, state, encoder=None):
        self.encoder = encoder
        self._build(state["head.weight"].shape[1], state["head.weight"].shape[0])
        self.head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")})
        if self.crf is not None:
            self.crf.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("crf.")})
        return self
