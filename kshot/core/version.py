"""The package version, written into every saved model's manifest."""

__version__ = "0.1.0"
