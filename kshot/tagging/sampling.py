"""K-shot support sets and Few-NERD-style episodes for tagging.

``greedy_support`` (Yang & Katiyar 2020): walk the sentences in a seeded random order and keep a
sentence when it mentions a type that still has fewer than K mentions; then drop, in the same order,
every kept sentence whose removal leaves every type at K or more. ``shots=5, seed=3`` is always the
same support set. ``fewnerd_episode`` (Ding et al. 2021): N random types, a support and a disjoint
query set, each with K to 2K mentions of every one of the N types; other types' tags become ``O``.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..core.errors import KshotError, check_positive_int
from .io import spans


def mention_counts(tags, types=None) -> list[Counter]:
    """Per sentence, how many entities of each type (restricted to ``types`` when given)."""
    keep = None if types is None else set(types)
    return [Counter(k for _, _, k in spans(t) if keep is None or k in keep) for t in tags]


def only_types(tags, types) -> list[list[str]]:
    """Tags with every entity whose type is not in ``types`` turned into ``O``."""
    keep = set(types)
    return [[t if t == "O" or t.split("-", 1)[1] in keep else "O" for t in ts] for ts in tags]


def _check_available(counts: list[Counter], types, shots: int, what: str = "the training data") -> None:
    total = sum(counts, Counter())
    short = [f"{t} ({total[t]})" for t in types if total[t] < shots]
    if short:
        raise KshotError(
            f"{what} has fewer than {shots} mentions of: {', '.join(short)}; choose other --types or fewer --shots"
        )


def _greedy(order, counts, types, low: int, high: int | None) -> list[int]:
    have, chosen = Counter(), []
    for i in order:
        c = counts[i]
        if not any(have[t] < low and c[t] for t in types):
            continue
        if high is not None and any(have[t] + c[t] > high for t in types):
            continue
        chosen.append(i)
        have.update(c)
        if all(have[t] >= low for t in types):
            break
    for i in list(chosen):
        if all(have[t] - counts[i][t] >= low for t in types):
            chosen.remove(i)
            have.subtract(counts[i])
    return chosen


def greedy_support(tags, shots: int, seed: int = 0, types=None) -> list[int]:
    """Indices of a greedy ``shots``-shot support set: every type in ``types`` (default: all types in
    ``tags``) has at least ``shots`` mentions, and no sentence can be dropped without losing that."""
    shots = check_positive_int("shots", shots)
    counts = mention_counts(tags, types)
    types = sorted(types) if types is not None else sorted(set().union(*counts))
    if not types:
        raise KshotError("the training data has no entities; tag at least one entity per type")
    _check_available(counts, types, shots)
    order = np.random.default_rng(seed).permutation(len(tags))
    chosen = _greedy(order, counts, types, shots, None)
    return sorted(int(i) for i in chosen)


def fewnerd_episode(tags, way: int, shots: int, seed: int = 0, types=None) -> tuple[list[int], list[int], list[str]]:
    """One N-way K~2K episode: (support indices, query indices, its ``way`` types). Both sets hold K to
    2K mentions of each type where the data allow it (a sentence that would push a type past 2K is
    skipped); restrict the tags to the returned types with ``only_types``."""
    way, shots = check_positive_int("way", way), check_positive_int("shots", shots)
    counts = mention_counts(tags, types)
    pool = sorted(types) if types is not None else sorted(set().union(*counts))
    if way > len(pool):
        raise KshotError(f"way {way} is more than the {len(pool)} entity types available")
    rng = np.random.default_rng(seed)
    chosen_types = sorted(rng.choice(pool, size=way, replace=False).tolist())
    counts = mention_counts(tags, chosen_types)
    order = rng.permutation(len(tags))
    support = _greedy(order, counts, chosen_types, shots, 2 * shots)
    used = set(support)
    query = _greedy([i for i in order if i not in used], counts, chosen_types, shots, 2 * shots)
    return sorted(map(int, support)), sorted(map(int, query)), chosen_types
