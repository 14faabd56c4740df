"""Tagging methods, one file each (see kshot/tagging/methods/base.py for the contract)."""

from .episodic import EpisodicTagger
from .finetune import FineTune
from .nnshot import NNShot
from .proto import ProtoTagger
from .span import SpanTagger
from .structshot import StructShot

METHODS = {m.name: m for m in (SpanTagger, ProtoTagger, NNShot, StructShot, FineTune, EpisodicTagger)}
