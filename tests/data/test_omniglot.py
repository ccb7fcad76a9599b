"""Omniglot: counts, splits, pixel conventions, and clear errors for missing or broken data."""

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from mlcourse.data import OmniglotError, load_omniglot
from mlcourse.data import omniglot


def base(name: str) -> str:
    return name.rsplit("/", 1)[0]


def test_character_counts(characters):
    images, names = characters
    assert images.shape == (1623, 20, 28, 28) and images.dtype == torch.uint8
    background, evaluation = names[:964], names[964:]
    assert len(evaluation) == 659
    alphabets = lambda ns: {n.split("/")[0] for n in ns}  # noqa: E731
    assert len(alphabets(background)) == 30 and len(alphabets(evaluation)) == 20
    assert not alphabets(background) & alphabets(evaluation)


def test_vinyals_counts_and_disjoint():
    sizes = {part: len(load_omniglot("vinyals", part, download=False)) for part in ("train", "val", "test")}
    assert sizes == {"train": 4112, "val": 688, "test": 1692}
    names = {part: set(omniglot._vinyals_classes(part, omniglot.find_omniglot(False)))
             for part in ("train", "val", "test")}
    chars = {part: {base(n) for n in ns} for part, ns in names.items()}
    assert not chars["train"] & chars["val"] and not chars["train"] & chars["test"]
    assert not chars["val"] & chars["test"]  # whole characters, all four rotations, stay in one part


def test_lake_split(characters):
    _, names = characters
    parts = {p: omniglot.split_classes("lake", p, names) for p in ("train", "val", "trainval", "test")}
    assert len(parts["trainval"]) == 964 and len(parts["test"]) == 659
    assert len(parts["train"]) + len(parts["val"]) == 964 and not set(parts["train"]) & set(parts["val"])
    alpha = lambda ns: {n.split("/")[0] for n in ns}  # noqa: E731
    assert alpha(parts["val"]) == set(omniglot.lake_val_alphabets(names)) and len(alpha(parts["val"])) == 5
    assert not alpha(parts["train"]) & alpha(parts["val"]) and not alpha(parts["trainval"]) & alpha(parts["test"])


def test_pixels_in_range_with_ink_one(vinyals_train):
    x = vinyals_train.images
    assert x.dtype == torch.float32 and x.min() == 0 and x.max() == 1
    assert x.mean() < 0.2  # strokes are thin: mostly paper (0), a little ink (1)
    assert x[..., 0, :].mean() < 0.01 < x[..., 14, :].mean()  # the border is nearly all paper, the middle has ink


def test_rotations_are_extra_classes(vinyals_train):
    names = vinyals_train.classes
    i0 = next(i for i, n in enumerate(names) if n.endswith("rot000") and base(n) + "/rot090" in names)
    i90 = names.index(base(names[i0]) + "/rot090")
    expected = torch.rot90(vinyals_train.images[i0], 1, dims=(-2, -1))
    assert torch.equal(vinyals_train.images[i90], expected)


def test_unknown_split_or_part():
    with pytest.raises(ValueError, match="unknown split"):
        load_omniglot("nope", "train", download=False)
    with pytest.raises(ValueError, match="unknown part"):
        load_omniglot("lake", "training", download=False)


@pytest.fixture
def empty_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCOURSE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MLCOURSE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "data" / "omniglot").mkdir(parents=True)
    return tmp_path / "data" / "omniglot"


def test_missing_data_names_where_it_looked(empty_env):
    with pytest.raises(OmniglotError) as err:
        load_omniglot(download=False)
    assert str(empty_env) in str(err.value) and "MLCOURSE_DATA" in str(err.value)


def test_failed_download_is_clear_and_leaves_no_partial_file(empty_env, monkeypatch, tmp_path):
    import torchvision.datasets.utils as tv_utils

    def offline(url, root, filename, md5):
        (tmp_path / "cache" / "data" / "omniglot" / filename).write_bytes(b"half a zip")
        raise OSError("network is unreachable")

    monkeypatch.setattr(tv_utils, "download_url", offline)
    with pytest.raises(OmniglotError, match="download failed"):
        load_omniglot(download=True)
    assert not list((tmp_path / "cache" / "data" / "omniglot").glob("*.zip"))


def test_corrupt_zip_is_a_clear_error(empty_env):
    for part in omniglot.PARTS:
        (empty_env / f"{part}.zip").write_bytes(b"this is not a zip file")
    with pytest.raises(OmniglotError, match="not a readable zip"):
        load_omniglot(download=False)


def test_partial_zip_is_a_clear_error(empty_env):
    for part in omniglot.PARTS:
        with zipfile.ZipFile(empty_env / f"{part}.zip", "w") as zf:
            zf.writestr(f"{part}/Alpha/character01/0001_01.png", b"")
    with pytest.raises(OmniglotError, match="partial"):
        load_omniglot(download=False)


def test_checksum_mismatch_is_a_clear_error(empty_env):
    for part in omniglot.PARTS:
        (empty_env / f"{part}.zip").write_bytes(b"truncated")
    good = hashlib.sha256(b"the real file").hexdigest()
    (empty_env / "SHA256SUMS").write_text(f"{good}  images_background.zip\n")
    with pytest.raises(OmniglotError, match="checksum"):
        load_omniglot(download=False)


def test_unpacked_folder_reads_like_the_zip(tmp_path):
    root = omniglot.find_omniglot(download=False)
    with zipfile.ZipFile(root / "images_evaluation.zip") as zf:
        zf.extractall(tmp_path)
    from_zip = omniglot._list_pngs(root, "images_evaluation")
    from_folder = omniglot._list_pngs(tmp_path, "images_evaluation")
    assert from_zip.keys() == from_folder.keys() and len(from_zip) == 13180
    assert all(from_zip[k] == from_folder[k] for k in list(from_zip)[:200])


@pytest.fixture(scope="module")
def real_root():
    """The Omniglot folder of this session, found before a test changes the environment."""
    try:
        return omniglot.find_omniglot(download=False)
    except OmniglotError as err:
        pytest.skip(f"no Omniglot in this session: {err}")


def test_download_into_an_empty_cache_is_a_complete_setup(real_root, tmp_path, monkeypatch):
    """A new user: no MLCOURSE_DATA, an empty cache, only the two zips downloaded; both splits work."""
    import torchvision.datasets.utils as tv_utils

    if not all((real_root / f"{part}.zip").is_file() for part in omniglot.PARTS):
        pytest.skip(f"{real_root} holds unpacked folders, not the two zips a download gives")
    fetched = []

    def fake_download(url, root, filename, md5):  # the official zips, copied instead of fetched
        assert url.endswith("/" + filename)
        fetched.append(filename)
        shutil.copyfile(real_root / filename, Path(root) / filename)

    monkeypatch.delenv("MLCOURSE_DATA", raising=False)
    monkeypatch.setenv("MLCOURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(tv_utils, "download_url", fake_download)
    train = load_omniglot("vinyals", "train")
    target = tmp_path / "cache" / "data" / "omniglot"
    assert fetched == ["images_background.zip", "images_evaluation.zip"]
    assert sorted(p.name for p in target.iterdir()) == fetched  # no split lists in the data folder
    assert len(train) == 4112 and train.classes == (omniglot.PACKAGE_SPLITS / "train.txt").read_text().split()
    sizes = {part: len(load_omniglot("vinyals", part)) for part in ("val", "trainval", "test")}
    assert sizes == {"val": 688, "trainval": 4800, "test": 1692}
    assert len(load_omniglot("lake", "train")) + len(load_omniglot("lake", "val")) == 964
    assert len(load_omniglot("lake", "test")) == 659
    assert fetched == ["images_background.zip", "images_evaluation.zip"]  # downloaded once


def test_data_folder_without_splits_uses_the_package_lists(tmp_path):
    assert omniglot.vinyals_lists(tmp_path) == omniglot.PACKAGE_SPLITS
    parts = {p: omniglot._vinyals_classes(p, tmp_path) for p in ("train", "val", "trainval", "test")}
    assert {p: len(v) for p, v in parts.items()} == {"train": 4112, "val": 688, "trainval": 4800, "test": 1692}
    assert parts["trainval"] == parts["train"] + parts["val"]


def test_data_folder_lists_take_precedence(tmp_path):
    own = tmp_path / "splits" / "vinyals"
    own.mkdir(parents=True)
    (own / "train.txt").write_text("Alpha/character01/rot000\nAlpha/character01/rot090\n")
    assert omniglot._vinyals_classes("train", tmp_path) == ["Alpha/character01/rot000", "Alpha/character01/rot090"]
    with pytest.raises(OmniglotError, match="precedence") as err:  # never mixed with the package's lists
        omniglot._vinyals_classes("val", tmp_path)
    assert str(own / "val.txt") in str(err.value)


def test_package_lists_equal_the_data_folder_copy(real_root):
    theirs = real_root / "splits" / "vinyals"
    if not theirs.is_dir():
        pytest.skip(f"{real_root} has no splits/vinyals/ to compare the package's copy with")
    ours = omniglot.PACKAGE_SPLITS
    for name in ("train.txt", "val.txt", "test.txt", "LICENSE"):
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name
    if (theirs / "trainval.txt").is_file():  # the package derives trainval as train + val
        derived = (ours / "train.txt").read_bytes() + (ours / "val.txt").read_bytes()
        assert (theirs / "trainval.txt").read_bytes() == derived


def test_not_found_says_where_to_put_the_data(empty_env, tmp_path):
    from torchvision.datasets import Omniglot

    with pytest.raises(OmniglotError) as err:
        load_omniglot(download=False)
    message = str(err.value)
    assert f"into {tmp_path / 'cache' / 'data' / 'omniglot'}/" in message  # the cache a download would fill
    assert f"{Omniglot.download_url_prefix}/images_evaluation.zip" in message and "MLCOURSE_DATA" in message
    assert "shared" not in message.replace(str(tmp_path), "")  # no path that exists only on the course's machines
