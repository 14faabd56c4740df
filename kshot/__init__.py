"""kshot: few-shot learning on PyTorch (metric, gradient-based and transfer methods)."""

__version__ = "0.1.0"

from .data import LabeledData, load_dataset  # noqa: E402
from .episodes import Episode, EpisodeSampler  # noqa: E402
from .errors import KshotError  # noqa: E402
from .evaluation import Score, evaluate  # noqa: E402
from .methods import METHODS, build_method  # noqa: E402
from .training import TrainConfig, load_method, meta_train  # noqa: E402

__all__ = ["Episode", "EpisodeSampler", "KshotError", "LabeledData", "METHODS", "Score",
           "TrainConfig", "build_method", "evaluate", "load_dataset", "load_method", "meta_train",
           "__version__", "FewShotClassifier"]


def __getattr__(name):
    """``kshot.FewShotClassifier`` loads the text stack (sentence-transformers) only when asked for."""
    if name == "FewShotClassifier":
        from .text.classifier import FewShotClassifier

        return FewShotClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
