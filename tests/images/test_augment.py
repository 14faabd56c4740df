"""kshot.images.augment: class rotation, per-image shifts and rotations, config validation, training with it."""

import pytest
import torch
from toy import toy_data

from kshot.core.errors import KshotError
from kshot.images.augment import Augmentation, generator_for, rotate_classes
from kshot.images.episodes import EpisodeSampler
from kshot.images.training import TrainConfig, load_method, meta_train


def test_rotate_classes_makes_four_classes_per_class():
    data = toy_data(n_classes=3, per_class=2)
    rot = rotate_classes(data)
    assert rot.num_classes == 12 and len(rot) == 24 and rot.class_names[3] == "c0/rot090"
    first = data.items[data.labels == 1][0]
    assert torch.equal(rot.items[rot.labels == 1 + 3 * 2][0], torch.rot90(first, 2, dims=(-2, -1)))
    with pytest.raises(KshotError, match="class rotation needs image items"):
        rotate_classes(toy_data().__class__(["a", "b"], [0, 1], ["x", "y"]))


def test_image_transforms_shift_whole_pixels_and_are_seeded():
    img = torch.zeros(1, 1, 9, 9)
    img[..., 4, 4] = 1.0
    shifted = Augmentation(shift=2).images(img.expand(50, 1, 9, 9), generator_for(0, 0))
    assert shifted.shape == (50, 1, 9, 9)
    assert torch.allclose(shifted.sum((-1, -2)), torch.ones(50, 1), atol=1e-5)  # moved, not blurred
    spots = {tuple((s[0] == s[0].max()).nonzero()[0].tolist()) for s in shifted}
    assert len(spots) > 5 and all(2 <= r <= 6 and 2 <= c <= 6 for r, c in spots)
    assert torch.equal(shifted, Augmentation(shift=2).images(img.expand(50, 1, 9, 9), generator_for(0, 0)))
    rotated = Augmentation(rotate=30).images(torch.rand(2, 3, 1, 8, 8), generator_for(1, 2))
    assert rotated.shape == (2, 3, 1, 8, 8)
    x = torch.rand(4, 1, 8, 8)
    assert Augmentation().images(x) is x  # off: untouched


def test_episode_transform_keeps_labels():
    data = toy_data()
    ep = EpisodeSampler(data.labels, 3, 2, 2).episode(data.items, 0)
    out = Augmentation(shift=1, rotate=10).episode(ep, generator_for(0, 0))
    assert torch.equal(out.support_labels, ep.support_labels) and torch.equal(out.classes, ep.classes)
    assert out.support.shape == ep.support.shape and not torch.equal(out.query, ep.query)


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"zoom": 2}, "unknown augmentation 'zoom'"),
        ({"shift": -1}, "augment shift must be an integer >= 0"),
        ({"rotate": 400}, "augment rotate must be a number of degrees"),
        ({"classes": "yes"}, "augment classes must be true or false"),
    ],
)
def test_bad_augmentation_is_a_kshot_error(bad, message):
    with pytest.raises(KshotError, match=message):
        TrainConfig(augment=bad).validate()


def test_training_with_augmentation_is_reproducible(tmp_path):
    cfg = dict(
        method="protonet",
        dataset="toy",
        backbone="mlp",
        way=5,
        shot=1,
        query=2,
        episodes=10,
        val_way=3,
        val_every=10,
        val_episodes=5,
        backbone_params={"hidden": [16], "out_dim": 8},
        augment={"shift": 1, "rotate": 15, "classes": True},
    )
    train, val = toy_data(), toy_data(split="val")
    for run in ("a", "b"):
        meta_train(TrainConfig(**cfg), tmp_path / run, progress=False, train_data=train, val_data=val)
    (a, _), (b, _) = load_method(tmp_path / "a"), load_method(tmp_path / "b")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
