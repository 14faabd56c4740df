import numpy as np
import pytest
import torch

from kshot.core.errors import KshotError
from kshot.images.episodes import Episode, EpisodeSampler


def labels(n_classes=10, per_class=20, uneven=False):
    counts = [per_class + (c if uneven else 0) for c in range(n_classes)]
    return np.repeat(np.arange(n_classes) * 7 + 3, counts)  # class ids need not be 0..C-1


def test_same_seed_same_episodes_and_random_access():
    a = EpisodeSampler(labels(), way=5, shot=2, query=3, seed=11)
    b = EpisodeSampler(labels(), way=5, shot=2, query=3, seed=11)
    for i in (0, 1, 17):
        ea, eb = a.index(i), b.index(i)
        assert np.array_equal(ea.support, eb.support) and np.array_equal(ea.query, eb.query)
        assert np.array_equal(ea.classes, eb.classes)
    c = EpisodeSampler(labels(), way=5, shot=2, query=3, seed=12)
    assert not np.array_equal(a.index(0).support, c.index(0).support)
    # episode i does not depend on having drawn 0..i-1
    assert np.array_equal(list(a.indices(3, start=5))[0].support, a.index(5).support)


@pytest.mark.parametrize("uneven", [False, True])
def test_balance_remapping_and_disjoint_support_query(uneven):
    y = labels(uneven=uneven)
    s = EpisodeSampler(y, way=4, shot=3, query=5, seed=0)
    items = torch.arange(len(y))
    for i in range(50):
        ep = s.episode(items, i)
        assert ep.support_labels.tolist() == [c for c in range(4) for _ in range(3)]
        assert ep.query_labels.tolist() == [c for c in range(4) for _ in range(5)]
        assert len(set(ep.classes.tolist())) == 4
        # every item belongs to the class its remapped label points at
        assert (torch.from_numpy(y)[ep.support] == ep.classes[ep.support_labels]).all()
        assert (torch.from_numpy(y)[ep.query] == ep.classes[ep.query_labels]).all()
        assert not set(ep.support.tolist()) & set(ep.query.tolist())


def test_classes_are_drawn_uniformly():
    s = EpisodeSampler(labels(n_classes=10), way=2, shot=1, query=1, seed=3)
    counts = np.bincount(np.concatenate([s.index(i).classes for i in range(2000)]), minlength=80)
    counts = counts[counts > 0]
    assert len(counts) == 10 and counts.min() > 300 and counts.max() < 500  # expected 400 each


def test_batched_episodes_stack_a_task_dimension():
    y = labels()
    s = EpisodeSampler(y, way=3, shot=1, query=2, seed=0)
    items = torch.randn(len(y), 1, 4, 4)
    batch = next(s.episodes(items, 4, batch=4))
    assert batch.support.shape == (4, 3, 1, 4, 4) and batch.query_labels.shape == (4, 6)
    single = s.episode(items, 2)
    assert torch.equal(batch.support[2], single.support)
    assert Episode.stack([single, single]).classes.shape == (2, 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(way=11, shot=1, query=1), "way=11 is larger than the number of classes (10)"),
        (dict(way=5, shot=15, query=6), "shot + query = 21 is larger than the smallest class (20"),
        (dict(way=0, shot=1, query=1), "way must be an integer >= 1, got 0"),
        (dict(way=5, shot=-1, query=1), "shot must be an integer >= 1, got -1"),
        (dict(way=5, shot=1, query=-2), "query must be an integer >= 0, got -2"),
        (dict(way=5.5, shot=1, query=1), "way must be an integer"),
    ],
)
def test_impossible_requests_fail_at_construction(kwargs, message):
    with pytest.raises(KshotError) as err:
        EpisodeSampler(labels(), seed=0, **kwargs)
    assert message in str(err.value)
