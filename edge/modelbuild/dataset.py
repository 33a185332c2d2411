"""A folder of images, one sub-folder per class, split into train/validation/test by hashing.

The layout is the one Keras' ``image_dataset_from_directory``, Teachable Machine and Edge
Impulse exports use::

    DATA/
      cat/  img001.jpg  more/img002.png ...
      dog/  ...

Classes are the sub-folders' names in sorted order (hidden folders are ignored); images may sit
in nested folders below their class folder. Each file goes to a split decided by a hash of its
path relative to DATA (``cat/img001.jpg``), so the split never depends on which other files
exist: re-running, or adding images later, leaves every old image in its split.

Images are decoded with OpenCV and squash-resized to the model input with ``INTER_AREA``, as the
runtime preprocesses camera frames; files that cannot be decoded are logged and skipped.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.boards import DEFAULT_MAX_IMAGE_PIXELS
from edge.camera.files import IMAGE_SUFFIXES
from edge.camera.images import read_rgb
from edge.errors import ImageError, TrainingError
from edge.runtime.preprocess import fit_frame

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
LAYOUT_HINT = "put each class's images in its own sub-folder (DATA/cat/*.jpg, DATA/dog/*.jpg)"


@dataclass(frozen=True)
class SplitFractions:
    """Shares of the validation and test splits; the training split gets the rest."""

    val: float = 0.1
    test: float = 0.1

    def __post_init__(self) -> None:
        for name, value in (("val", self.val), ("test", self.test)):
            if not 0.0 < value < 1.0:
                raise TrainingError(f"the {name} fraction (={value}) must be in (0, 1)")
        if self.val + self.test >= 0.9:
            raise TrainingError(f"val + test (={self.val + self.test:g}) must leave at least "
                                "10% of the images for training")


def hash_fraction(relative_path: str) -> float:
    """A number in [0, 1) fixed by the path alone (SHA-256 of its UTF-8 bytes)."""
    digest = hashlib.sha256(relative_path.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of(relative_path: str, fractions: SplitFractions) -> str:
    """``train``, ``val`` or ``test`` for a file's path relative to the data folder."""
    x = hash_fraction(relative_path)
    if x < fractions.test:
        return "test"
    if x < fractions.test + fractions.val:
        return "val"
    return "train"


@dataclass(frozen=True)
class Sample:
    """One image file: where it is, its class index and its split."""

    path: Path
    relative: str
    label: int
    split: str


@dataclass(frozen=True)
class ImageFolder:
    """The scanned data folder: class names and every image file with its split."""

    root: Path
    classes: tuple[str, ...]
    samples: tuple[Sample, ...]
    fractions: SplitFractions

    def split(self, name: str) -> list[Sample]:
        """The samples of one split (``train``, ``val``, ``test``, or ``all``)."""
        return [s for s in self.samples if name in ("all", s.split)]

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per split and class: ``{"train": {"cat": 80, ...}, ...}``."""
        table = {split: dict.fromkeys(self.classes, 0) for split in SPLITS}
        for s in self.samples:
            table[s.split][self.classes[s.label]] += 1
        return table


def _class_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise TrainingError(f"{root}: no such data folder; {LAYOUT_HINT}")
    try:
        entries = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as e:
        raise TrainingError(f"{root}: cannot list the data folder: {e.strerror or e}") from e
    if not entries:
        raise TrainingError(f"{root}: no class folders; {LAYOUT_HINT}")
    if len(entries) == 1:
        raise TrainingError(f"{root}: only one class ({entries[0].name}); a classifier needs "
                            f"at least two class folders; {LAYOUT_HINT}")
    return entries


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (nested folders too), hidden ones skipped, sorted."""
    found: list[Path] = []
    for parent, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(parent) / f for f in sorted(files)
                     if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES)
    return found


def scan_folder(root: Path, fractions: SplitFractions | None = None) -> ImageFolder:
    """List the classes and image files under ``root`` and assign each file its split.

    Raises:
        TrainingError: ``root`` is missing, has fewer than two class folders, or a class
            folder holds no image files.
    """
    fractions = fractions or SplitFractions()
    samples = []
    folders = _class_folders(root)
    for label, folder in enumerate(folders):
        files = image_files(folder)
        if not files:
            raise TrainingError(f"{folder}: class {folder.name!r} has no images "
                                f"({', '.join(sorted(IMAGE_SUFFIXES))}); add some or remove "
                                "the folder")
        for path in files:
            relative = path.relative_to(root).as_posix()
            samples.append(Sample(path, relative, label, split_of(relative, fractions)))
    return ImageFolder(root, tuple(f.name for f in folders), tuple(samples), fractions)


@dataclass(frozen=True)
class LoadedImages:
    """Decoded images at the model's input size, their labels and the files skipped."""

    pixels: np.ndarray  # (N, height, width, 3) uint8 RGB
    labels: np.ndarray  # (N,) int64
    files: tuple[str, ...]  # relative paths, in the order of ``pixels``
    skipped: tuple[str, ...]  # relative paths that could not be decoded


def load_images(samples: Sequence[Sample], size: tuple[int, int],
                max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> LoadedImages:
    """Decode ``samples`` and squash-resize them to ``size`` = (width, height).

    Files that cannot be decoded (or whose header claims more than ``max_pixels`` pixels) are
    logged as warnings and listed in ``skipped``.
    """
    pixels = np.empty((len(samples), size[1], size[0], 3), np.uint8)
    labels: list[int] = []
    files: list[str] = []
    skipped: list[str] = []
    for sample in samples:
        try:
            rgb = read_rgb(sample.path, max_pixels=max_pixels)
        except ImageError as e:
            log.warning("%s; skipped", e)
            skipped.append(sample.relative)
            continue
        pixels[len(files)] = fit_frame(rgb, size)
        labels.append(sample.label)
        files.append(sample.relative)
    return LoadedImages(pixels[: len(files)], np.asarray(labels, np.int64), tuple(files),
                        tuple(skipped))


def require_every_class(images: LoadedImages, classes: Sequence[str], split: str) -> None:
    """Raise when a class has no decodable image in ``split`` (training cannot learn it)."""
    present = np.bincount(images.labels, minlength=len(classes))
    empty = [name for name, n in zip(classes, present, strict=True) if n == 0]
    if empty:
        raise TrainingError(f"class {empty[0]!r} has no decodable image in the {split} split; "
                            "add images to its folder (every class needs some in each split)")
