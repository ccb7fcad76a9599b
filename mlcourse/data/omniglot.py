"""Omniglot (Lake et al. 2015): find it, preprocess it once to 28x28, and cut it into class splits.

Where the data is looked for, in order:
1. `$MLCOURSE_DATA/omniglot/` (the official zips or their unpacked folders),
2. the user cache `~/.cache/mlcourse/data/omniglot/` (or `$MLCOURSE_CACHE/data/omniglot/`),
3. a checksum-verified download of the official release into that cache.

The preprocessed images (uint8, ink = 255) are cached as one tensor file under the user cache,
never next to a read-only copy of the data.

The class lists of the `vinyals` split (Snell et al. 2017, MIT) ship with the package in
`mlcourse/data/splits/vinyals/`; a data folder's own `splits/vinyals/` takes precedence. So the two
official zips alone are a complete setup, for both splits.
"""

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from mlcourse.utils import quiet

PARTS = ("images_background", "images_evaluation")
N_CHARACTERS = {"images_background": 964, "images_evaluation": 659}
N_DRAWERS = 20
SIZE = 28
CACHE_VERSION = 1  # bump when the preprocessing below changes
# The 5 background alphabets held out for validation in the `lake` split (every 6th, sorted).
LAKE_VAL_EVERY = 6
# The vinyals class lists that ship with the package: train.txt, val.txt, test.txt (trainval = train + val).
PACKAGE_SPLITS = Path(__file__).parent / "splits" / "vinyals"


class OmniglotError(RuntimeError):
    """Omniglot is missing, partial or corrupt; the message says what was looked for and what to do."""


@dataclass
class ClassImages:
    """The images of one split: `images[c, i]` is drawing `i` of class `classes[c]`."""

    images: torch.Tensor  # (n_classes, 20, 1, 28, 28) float32 in [0, 1], ink = 1
    classes: list[str]  # "Alphabet/characterNN/rotDDD"

    def __len__(self) -> int:
        return len(self.classes)


def cache_dir() -> Path:
    """The user cache of the course: $MLCOURSE_CACHE, else $XDG_CACHE_HOME/mlcourse, else ~/.cache/mlcourse."""
    if os.environ.get("MLCOURSE_CACHE"):
        return Path(os.environ["MLCOURSE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mlcourse"


def candidate_roots() -> list[Path]:
    """The folders that may hold `images_background(.zip)` and `images_evaluation(.zip)`, in order."""
    roots = []
    if os.environ.get("MLCOURSE_DATA"):
        roots.append(Path(os.environ["MLCOURSE_DATA"]).expanduser() / "omniglot")
    roots.append(cache_dir() / "data" / "omniglot")
    return roots


def _has_part(root: Path, part: str) -> bool:
    return (root / f"{part}.zip").is_file() or (root / part).is_dir()


def find_omniglot(download: bool = True) -> Path:
    """The first candidate root holding both parts; download into the cache when none does."""
    roots = candidate_roots()
    for root in roots:
        if all(_has_part(root, part) for part in PARTS):
            return root
    if download:
        return _download(roots[-1])
    raise OmniglotError(_not_found_message(roots, "downloading was not allowed"))


def _not_found_message(roots: list[Path], why: str) -> str:
    from torchvision.datasets import Omniglot

    looked = "\n".join(f"  - {r}/{{images_background,images_evaluation}}[.zip]" for r in roots)
    urls = " and ".join(f"{Omniglot.download_url_prefix}/{part}.zip" for part in PARTS)
    return (
        f"Omniglot was not found; looked in:\n{looked}\nand {why}.\n"
        f"Fix: download {urls} into {roots[-1]}/ (keep them zipped; the split lists ship with "
        "mlcourse), or set MLCOURSE_DATA to the folder that holds omniglot/ with those two zips (or "
        "their unpacked folders) in it, or connect to the internet and run again to download them."
    )


def _download(root: Path) -> Path:
    """Download and verify the official zips (MD5s as torchvision knows them) into `root`."""
    from torchvision.datasets import Omniglot
    from torchvision.datasets.utils import download_url

    root.mkdir(parents=True, exist_ok=True)
    try:
        for part in PARTS:
            url = f"{Omniglot.download_url_prefix}/{part}.zip"
            download_url(url, str(root), filename=f"{part}.zip", md5=Omniglot.zips_md5[part])
    except Exception as err:  # network down, checksum mismatch, ...
        for part in PARTS:  # never leave a partial zip that would be found next time
            (root / f"{part}.zip").unlink(missing_ok=True)
        raise OmniglotError(_not_found_message(candidate_roots(), f"the download failed ({err})")) from err
    return root


def _verify_checksums(root: Path) -> None:
    """Check the zips against a SHA256SUMS file beside them, when there is one."""
    sums = root / "SHA256SUMS"
    if not sums.is_file():
        return
    for line in sums.read_text().splitlines():
        if not line.strip():
            continue
        expected, name = line.split()
        path = root / name
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() != expected:
            raise OmniglotError(f"{path} does not match its checksum in {sums}: the file is corrupt or "
                                "partial. Replace it with a fresh copy of the official release.")


def _list_pngs(root: Path, part: str) -> dict[str, bytes]:
    """Map 'Alphabet/characterNN/XXXX_YY.png' to the PNG bytes of one part, from a zip or a folder."""
    zpath = root / f"{part}.zip"
    if zpath.is_file():
        try:
            with zipfile.ZipFile(zpath) as zf:
                return {n.split("/", 1)[1]: zf.read(n) for n in zf.namelist() if n.endswith(".png")}
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise OmniglotError(f"{zpath} is not a readable zip file ({err}): it is corrupt or partial. "
                                "Delete it and fetch the official release again.") from err
    folder = root / part
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.glob("*/*/*.png")}


def _to_28(png: bytes, name: str) -> np.ndarray:
    """Decode one 105x105 1-bit PNG and shrink it to 28x28 uint8 with ink = 255."""
    try:
        img = Image.open(io.BytesIO(png)).convert("L")
    except Exception as err:
        raise OmniglotError(f"cannot decode {name} ({err}): the data is corrupt; fetch it again.") from err
    ink = Image.fromarray(255 - np.asarray(img))  # paper is white in the files
    return np.asarray(ink.resize((SIZE, SIZE), Image.Resampling.LANCZOS))


def _preprocess_part(root: Path, part: str) -> tuple[np.ndarray, list[str]]:
    """All characters of one part: uint8 (n_characters, 20, 28, 28) and their 'Alphabet/characterNN' names."""
    pngs = _list_pngs(root, part)
    by_char: dict[str, list[str]] = {}
    for name in pngs:
        by_char.setdefault(name.rsplit("/", 1)[0], []).append(name)
    counts_ok = len(by_char) == N_CHARACTERS[part] and all(len(v) == N_DRAWERS for v in by_char.values())
    if not counts_ok:
        raise OmniglotError(
            f"{root}/{part} holds {len(by_char)} characters and {len(pngs)} images; the official release "
            f"has {N_CHARACTERS[part]} characters of {N_DRAWERS} drawings each. The copy is partial or "
            "not the official layout (<Alphabet>/character<NN>/<XXXX>_<YY>.png).")
    chars = sorted(by_char)
    bar = tqdm(chars, desc=f"preprocessing {part} to {SIZE}x{SIZE} (once)", disable=quiet())
    images = np.stack([np.stack([_to_28(pngs[n], n) for n in sorted(by_char[c])]) for c in bar])
    return images, chars


def _fingerprint(root: Path) -> str:
    """Identifies the source files, so that a cache made from other data is not reused."""
    h = hashlib.sha256()
    for part in PARTS:
        zpath = root / f"{part}.zip"
        if zpath.is_file():
            h.update(zpath.read_bytes())
        else:
            for p in sorted((root / part).glob("*/*/*.png")):
                h.update(p.relative_to(root).as_posix().encode())
                h.update(str(p.stat().st_size).encode())
    return h.hexdigest()


def load_characters(download: bool = True) -> tuple[torch.Tensor, list[str]]:
    """All 1623 characters as uint8 (1623, 20, 28, 28) with ink = 255, and their names; cached after the first call."""
    root = find_omniglot(download)
    _verify_checksums(root)
    fingerprint = _fingerprint(root)
    path = cache_dir() / f"omniglot{SIZE}_v{CACHE_VERSION}.pt"
    if path.is_file():
        cached = torch.load(path, weights_only=True)
        if cached.get("fingerprint") == fingerprint:
            return cached["images"], cached["names"]
    parts = [_preprocess_part(root, part) for part in PARTS]
    images = torch.from_numpy(np.concatenate([p[0] for p in parts]))  # (1623, 20, 28, 28)
    names = [n for p in parts for n in p[1]]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"images": images, "names": names, "fingerprint": fingerprint}, tmp)
    tmp.replace(path)  # atomic: an interrupted run never leaves a half-written cache
    return images, names


def split_classes(split: str, part: str, names: list[str], root: Path | None = None) -> list[str]:
    """The class names ('Alphabet/characterNN/rotDDD') of one part of a split."""
    if split == "vinyals":
        return _vinyals_classes(part, root or find_omniglot())
    if split == "lake":
        return _lake_classes(part, names)
    raise ValueError(f"unknown split {split!r}: use 'vinyals' (paper tables) or 'lake' (background/evaluation)")


def vinyals_lists(root: Path) -> Path:
    """The folder the vinyals class lists are read from: the data folder's own, else the package's copy."""
    own = root / "splits" / "vinyals"
    return own if own.is_dir() else PACKAGE_SPLITS


def _vinyals_classes(part: str, root: Path) -> list[str]:
    if part not in {"train", "val", "trainval", "test"}:
        raise ValueError(f"unknown part {part!r} of the vinyals split: use train, val, trainval or test")
    folder = vinyals_lists(root)
    path = folder / f"{part}.txt"
    if part == "trainval" and not path.is_file():  # the package ships train and val only
        return _vinyals_classes("train", root) + _vinyals_classes("val", root)
    if not path.is_file():
        if folder == PACKAGE_SPLITS:
            raise OmniglotError(f"the vinyals split list {path} that ships with mlcourse is missing: the "
                                "installation is incomplete. Reinstall mlcourse, or use split='lake'.")
        raise OmniglotError(f"the vinyals split list {path} is missing. The data folder's {folder} takes "
                            "precedence over the lists that ship with mlcourse: add train.txt, val.txt and "
                            "test.txt there, or remove that folder to use the package's lists.")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def lake_val_alphabets(names: list[str]) -> list[str]:
    """The background alphabets held out for validation in the `lake` split."""
    n_background = N_CHARACTERS["images_background"]
    alphabets = sorted({n.split("/")[0] for n in names[:n_background]})
    return alphabets[::LAKE_VAL_EVERY]


def _lake_classes(part: str, names: list[str]) -> list[str]:
    n_background = N_CHARACTERS["images_background"]
    background, evaluation = names[:n_background], names[n_background:]
    val_alphabets = set(lake_val_alphabets(names))
    chosen = {
        "train": [n for n in background if n.split("/")[0] not in val_alphabets],
        "val": [n for n in background if n.split("/")[0] in val_alphabets],
        "trainval": background,
        "test": evaluation,
    }
    if part not in chosen:
        raise ValueError(f"unknown part {part!r} of the lake split: use train, val, trainval or test")
    return [f"{n}/rot000" for n in chosen[part]]


def load_omniglot(split: str = "vinyals", part: str = "train", download: bool = True) -> ClassImages:
    """The classes of one part of a split as float images in [0, 1] (ink = 1), rotations applied."""
    chars, names = load_characters(download)
    classes = split_classes(split, part, names)
    index = {n: i for i, n in enumerate(names)}
    images = torch.empty(len(classes), N_DRAWERS, 1, SIZE, SIZE)  # (n_classes, 20, 1, 28, 28)
    for c, cls in enumerate(classes):
        char, rot = cls.rsplit("/", 1)
        k = int(rot.removeprefix("rot")) // 90
        images[c, :, 0] = torch.rot90(chars[index[char]], k, dims=(-2, -1)).float() / 255
    return ClassImages(images, classes)
