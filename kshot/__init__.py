"""kshot: few-shot learning on PyTorch (metric, gradient-based and transfer methods).

The public API, loaded on first use so that ``import kshot`` stays cheap and no domain imports another
through this file: ``kshot.FewShotClassifier`` (text), ``kshot.FewShotImageClassifier`` (photos on a pretrained
network), ``kshot.meta_train`` / ``kshot.evaluate`` (episodic image methods), ``kshot.FewShotTagger`` (entities), ``kshot.Recommender`` (cold-start recommendation),
``kshot.load`` (any saved model).
"""

from .core.version import __version__

_EXPORTS = {
    "KshotError": "kshot.core.errors",
    "LabeledData": "kshot.data",
    "load_dataset": "kshot.data",
    "Episode": "kshot.images.episodes",
    "EpisodeSampler": "kshot.images.episodes",
    "Score": "kshot.images.evaluation",
    "evaluate": "kshot.images.evaluation",
    "METHODS": "kshot.images.methods",
    "build_method": "kshot.images.methods",
    "TrainConfig": "kshot.images.training",
    "load_method": "kshot.images.training",
    "meta_train": "kshot.images.training",
    "FewShotClassifier": "kshot.text.classifier",
    "FewShotImageClassifier": "kshot.images.classifier",
    "FewShotTagger": "kshot.tagging.tagger",
    "Recommender": "kshot.recsys.recommender",
}

__all__ = ["__version__", "load", *sorted(_EXPORTS)]


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load(path, **kw):
    """Load any saved kshot model directory: a text classifier, an image classifier, a tagger, a
    recommender, or an episodic training run (its best checkpoint's method). The kind is read from the
    directory's manifest (``kshot.core.model_format``); ``kw`` go to the kind's loader."""
    import importlib

    from .core.model_format import read_manifest

    kind = read_manifest(path)[1]["kind"]
    if kind == "episodic-run":
        return importlib.import_module("kshot.images.training").load_method(path, **kw)[0]
    module, name = _LOADERS.get(kind, (None, None))
    if module is None:
        from .core.model_format import check_manifest

        check_manifest(path, {"kind": kind}, "text-classifier")  # raises: an unknown kind
    return getattr(importlib.import_module(module), name).load(path, **kw)


_LOADERS = {
    "text-classifier": ("kshot.text.classifier", "FewShotClassifier"),
    "image-classifier": ("kshot.images.classifier", "FewShotImageClassifier"),
    "tagger": ("kshot.tagging.tagger", "FewShotTagger"),
    "recommender": ("kshot.recsys.recommender", "Recommender"),
}


def __dir__():
    return __all__
