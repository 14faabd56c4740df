"""kshot: few-shot learning on PyTorch (metric, gradient-based and transfer methods).

The public API, loaded on first use so that ``import kshot`` stays cheap and no domain imports another
through this file: ``kshot.FewShotClassifier`` (text), ``kshot.meta_train`` / ``kshot.evaluate`` (episodic
image methods), ``kshot.FewShotTagger`` (entities), ``kshot.Recommender`` (cold-start recommendation),
``kshot.load`` (any saved model).
"""

__version__ = "0.1.0"

_EXPORTS = {
    "KshotError": "kshot.core.errors",
    "LabeledData": "kshot.data", "load_dataset": "kshot.data",
    "Episode": "kshot.images.episodes", "EpisodeSampler": "kshot.images.episodes",
    "Score": "kshot.images.evaluation", "evaluate": "kshot.images.evaluation",
    "METHODS": "kshot.images.methods", "build_method": "kshot.images.methods",
    "TrainConfig": "kshot.images.training", "load_method": "kshot.images.training",
    "meta_train": "kshot.images.training",
    "FewShotClassifier": "kshot.text.classifier",
    "FewShotTagger": "kshot.tagging.tagger",
    "Recommender": "kshot.recsys.recommender",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
