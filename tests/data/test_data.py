import hashlib
import shutil
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from kshot.core.errors import ChecksumError, DataError, KshotError
from kshot.data import DATASETS, data_root, download, load_dataset, omniglot

# ---------------------------------------------------------------- small Omniglot made in the test


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    img = np.ones((105, 105), dtype=bool)  # True = background, as in the originals
    r, c = rng.integers(10, 80, size=2)
    img[r : r + 20, c : c + 20] = False  # a square of ink
    import io

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def make_omniglot(folder, form="zip", drawers=20):
    """Two alphabets per set, 3 characters each, written as zips or extracted folders."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = {}
    for s, alphabets in (("background", ["Alpha", "Beta"]), ("evaluation", ["Gamma", "Delta"])):
        for a in alphabets:
            for c in range(1, 4):
                name = f"{a}/character{c:02d}"
                chars[name] = s
                for d in range(1, drawers + 1):
                    rel = f"images_{s}/{name}/{c:04d}_{d:02d}.png"
                    data = _png(hash((a, c, d)) % 10_000)
                    if form == "zip":
                        with zipfile.ZipFile(folder / f"images_{s}.zip", "a") as z:
                            z.writestr(rel, data)
                    else:
                        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                        (folder / rel).write_bytes(data)
    splits = folder / "splits" / "vinyals"
    splits.mkdir(parents=True)
    lines = {
        "train": ["Alpha/character01", "Alpha/character02", "Beta/character01"],
        "val": ["Beta/character02"],
        "test": ["Gamma/character01", "Delta/character03"],
    }
    lines["trainval"] = lines["train"] + lines["val"]
    for split, names in lines.items():
        (splits / f"{split}.txt").write_text("".join(f"{n}/rot{r:03d}\n" for n in names for r in (0, 90, 180, 270)))
    return chars


@pytest.mark.parametrize("form", ["zip", "folder"])
def test_omniglot_from_original_zips_or_folders(tmp_path, form):
    make_omniglot(tmp_path / "omniglot", form)
    train = load_dataset("omniglot", "train", root=tmp_path, download=False)
    assert train.num_classes == 3 * 4 and len(train) == 3 * 4 * 20
    assert train.items.shape[1:] == (1, 28, 28) and train.items.dtype == torch.float32
    assert 0 <= train.items.min() and train.items.max() <= 1 and train.items.mean() > 0  # ink = 1
    assert train.class_names[:2] == ["Alpha/character01/rot000", "Alpha/character01/rot090"]
    # a 90-degree rotation class holds the rotated images of the unrotated class
    x0 = train.items[train.labels == 0]
    x1 = train.items[train.labels == 1]
    assert torch.allclose(torch.rot90(x0, 1, dims=(-2, -1)), x1)
    test = load_dataset("omniglot", "test", root=tmp_path, download=False)
    assert test.num_classes == 8
    lake = load_dataset("omniglot", "evaluation", root=tmp_path, protocol="lake", download=False)
    assert lake.num_classes == 6 and len(lake) == 120


def test_omniglot_bad_arguments(tmp_path):
    with pytest.raises(KshotError, match="unknown Omniglot vinyals split 'dev'"):
        load_dataset("omniglot", "dev", root=tmp_path)
    with pytest.raises(KshotError, match="unknown Omniglot protocol 'x'"):
        load_dataset("omniglot", "train", root=tmp_path, protocol="x")
    with pytest.raises(KshotError, match="unknown dataset 'mnist'"):
        load_dataset("mnist", "train")


def test_missing_files_without_network_say_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setenv("KSHOT_MIRROR", "http://127.0.0.1:9")  # nothing listens on port 9
    with pytest.raises(DataError) as err:
        load_dataset("omniglot", "train", root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "omniglot") in msg and "images_background.npz" in msg
    assert "splits/vinyals" in msg and "\n" not in msg
    assert not any((tmp_path / "omniglot").rglob("*.npz"))  # nothing half-written


def test_corrupt_npz_names_the_file_and_the_checksum(tmp_path):
    make_omniglot(tmp_path / "omniglot")
    np.savez(tmp_path / "omniglot" / "images_background.npz", images=np.ones((2, 20, 105, 105), bool))
    with pytest.raises(ChecksumError) as err:
        load_dataset("omniglot", "train", root=tmp_path)
    assert "images_background.npz" in str(err.value) and "sha256" in str(err.value)


def test_data_root_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("KSHOT_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("KSHOT_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data_root() == tmp_path / "cache" / "kshot"


def test_registry_reports_presence(tmp_path):
    assert DATASETS["omniglot"].files(tmp_path)  # missing
    make_omniglot(tmp_path / "omniglot")
    assert DATASETS["omniglot"].files(tmp_path) == []


# ---------------------------------------------------------------- downloads over loopback HTTP


def test_download_checks_sha256_and_writes_atomically(tmp_path, http_server):
    served, url = http_server
    payload = np.random.default_rng(0).bytes(300_000)
    (served / "blob.bin").write_bytes(payload)
    good = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "out" / "blob.bin"
    download(f"{url}/blob.bin", dest, good, progress=False)
    assert dest.read_bytes() == payload

    dest2 = tmp_path / "out" / "other.bin"
    with pytest.raises(ChecksumError) as err:
        download(f"{url}/blob.bin", dest2, "0" * 64, progress=False)
    assert good in str(err.value) and "0" * 64 in str(err.value)
    assert not dest2.exists() and not list((tmp_path / "out").glob(".*part"))

    with pytest.raises(DataError, match="could not download"):
        download(f"{url}/missing.bin", tmp_path / "out" / "missing.bin", None, progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["blob.bin"]


def test_omniglot_download_from_mirror(tmp_path, http_server, real_data_root, monkeypatch):
    served, url = http_server
    src = real_data_root / "omniglot"
    for rel in omniglot.FILES:
        (served / "omniglot" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / rel, served / "omniglot" / rel)
    # a corrupt copy on the mirror is refused and leaves nothing behind
    good_val = (served / "omniglot/splits/vinyals/val.txt").read_bytes()
    (served / "omniglot/splits/vinyals/val.txt").write_bytes(good_val[:-100])
    monkeypatch.setenv("KSHOT_MIRROR", url)
    root = tmp_path / "root"
    with pytest.raises(ChecksumError, match="val.txt"):
        load_dataset("omniglot", "val", root=root)
    assert not (root / "omniglot/splits/vinyals/val.txt").exists()
    (served / "omniglot/splits/vinyals/val.txt").write_bytes(good_val)
    val = load_dataset("omniglot", "val", root=root)
    assert val.num_classes == 688 and len(val) == 688 * 20
    assert sorted(p.name for p in (root / "omniglot").iterdir()) == [
        "images_background.npz",
        "images_evaluation.npz",
        "splits",
    ]


# ---------------------------------------------------------------- the real data set


def test_real_omniglot_vinyals_and_lake_splits(real_data_root):
    sizes = {"train": 4112, "val": 688, "test": 1692, "trainval": 4800}
    seen = {}
    for split, classes in sizes.items():
        d = load_dataset("omniglot", split, root=real_data_root)
        assert d.num_classes == classes and len(d) == classes * 20
        assert d.items.shape[1:] == (1, 28, 28)
        seen[split] = {n.rsplit("/", 1)[0] for n in d.class_names}
    assert len(seen["train"]) == 1028 and len(seen["val"]) == 172 and len(seen["test"]) == 423
    assert not seen["train"] & seen["test"] and not seen["val"] & seen["test"]
    bg = load_dataset("omniglot", "background", root=real_data_root, protocol="lake")
    ev = load_dataset("omniglot", "evaluation", root=real_data_root, protocol="lake")
    assert (bg.num_classes, ev.num_classes) == (964, 659)


def test_builtin_alphabet_table_matches_the_index_file(real_data_root):
    import csv

    rows = list(csv.DictReader(open(real_data_root / "omniglot" / "omniglot_character_index.csv")))
    for s in ("background", "evaluation"):
        expected = [f"{r['alphabet']}/{r['character']}" for r in rows if r["set"] == s]
        assert omniglot.character_names(s) == expected
