"""User-facing errors: a message that names the bad value and what is allowed."""


class KshotError(ValueError):
    """Bad input from the user. The CLI prints the message on one line and exits 2."""


class DataError(KshotError):
    """A dataset is missing, incomplete or corrupt."""


class ChecksumError(DataError):
    """A file's sha256 does not match the expected value."""


def is_number(value) -> bool:
    """True for a finite number (a Python or numpy int or float); False for a bool, NaN, infinity or anything
    else. The check before comparing a user's value with a bound."""
    import numpy as np

    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and bool(np.isfinite(value))


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise KshotError naming it when it is not an int >= minimum."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):  # ints and numpy ints only
        raise KshotError(f"{name} must be an integer >= {minimum}, got {value!r}")
    value = int(value)
    if value < minimum:
        raise KshotError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def check_choice(name: str, value, allowed) -> str:
    """Return ``value``, or raise KshotError naming it and the allowed values when it is not one of them."""
    allowed = list(allowed)
    if value not in allowed:
        raise KshotError(f"unknown {name} {value!r}; choose one of: {', '.join(map(str, allowed))}")
    return value
