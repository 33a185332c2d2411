"""A labelled detection data set in the YOLO layout, as Ultralytics, Label Studio, Roboflow and
CVAT export it::

    DATA/
      classes.txt  (one name per line)   or   data.yaml  (``names: [a, b]`` or ``names: {0: a}``)
      images/  img1.jpg  train/img2.jpg ...
      labels/  img1.txt  train/img2.txt ...   one "class cx cy w h" line per object, 0-1

The label file of ``images/X/Y.jpg`` is ``labels/X/Y.txt``. An empty label file marks an image
with no objects. Problems (a class out of range, coordinates outside 0-1, a malformed line, a
missing label file) are collected with the file and line; their images are skipped, never a
traceback. Splits are decided by the same path hash as class folders (``dataset.split_of``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import TrainingError
from edge.modelbuild.dataset import SplitFractions, image_files, split_of

log = logging.getLogger(__name__)

LAYOUT_HINT = ("put images in DATA/images/, one DATA/labels/NAME.txt per image with "
               "'class cx cy w h' lines (normalised 0-1), and the class names in "
               "DATA/classes.txt or DATA/data.yaml")


@dataclass(frozen=True)
class Box:
    """One labelled object: class index and its box, normalised (centre, width, height)."""

    label: int
    cx: float
    cy: float
    w: float
    h: float


@dataclass(frozen=True)
class LabelledImage:
    """One image with its objects and its split."""

    path: Path
    relative: str
    boxes: tuple[Box, ...]
    split: str


@dataclass(frozen=True)
class DetectionData:
    """The scanned data set: class names, usable images and the problems found."""

    root: Path
    classes: tuple[str, ...]
    images: tuple[LabelledImage, ...]
    problems: tuple[str, ...]

    def split(self, name: str) -> list[LabelledImage]:
        return [i for i in self.images if name in ("all", i.split)]

    def objects(self) -> dict[str, int]:
        """Objects per class over every usable image."""
        counts = dict.fromkeys(self.classes, 0)
        for image in self.images:
            for box in image.boxes:
                counts[self.classes[box.label]] += 1
        return counts


def is_yolo_layout(root: Path) -> bool:
    """Whether ``root`` looks like the YOLO layout (an images/ and a labels/ folder)."""
    return (root / "images").is_dir() and (root / "labels").is_dir()


def read_class_names(root: Path) -> tuple[str, ...]:
    """The class names from ``classes.txt`` (preferred) or ``data.yaml``'s ``names``."""
    classes_txt, data_yaml = root / "classes.txt", root / "data.yaml"
    try:
        if classes_txt.is_file():
            names = [line.strip() for line in classes_txt.read_text("utf-8").splitlines()]
            names = [n for n in names if n]
        elif data_yaml.is_file():
            names = _yaml_names(data_yaml)
        else:
            raise TrainingError(f"{root}: no classes.txt or data.yaml naming the classes; "
                                f"{LAYOUT_HINT}")
    except (OSError, UnicodeDecodeError) as e:
        raise TrainingError(f"{root}: cannot read the class names: {e}") from e
    if not names:
        raise TrainingError(f"{root}: the class list is empty; {LAYOUT_HINT}")
    return tuple(names)


def _yaml_names(path: Path) -> list[str]:
    import yaml

    try:
        data: Any = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as e:
        raise TrainingError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from e
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        try:
            order = sorted(names, key=int)
        except (TypeError, ValueError) as e:
            raise TrainingError(f"{path}: 'names' keys must be class numbers") from e
        if [int(k) for k in order] != list(range(len(order))):
            raise TrainingError(f"{path}: 'names' must number the classes 0..{len(order) - 1}")
        return [str(names[k]) for k in order]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise TrainingError(f"{path}: no 'names' list of class names; {LAYOUT_HINT}")


def parse_label_lines(text: str, where: str, classes: int) -> tuple[list[Box], list[str]]:
    """The boxes of one label file's text, and a problem per bad line (``where:LINE: why``)."""
    boxes: list[Box] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            problems.append(f"{where}:{number}: expected 'class cx cy w h', got {line.strip()!r}")
            continue
        try:
            label = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError:
            problems.append(f"{where}:{number}: not numbers: {line.strip()!r}")
            continue
        if not 0 <= label < classes:
            problems.append(f"{where}:{number}: class {label} is out of range 0..{classes - 1}")
        elif not all(0.0 <= v <= 1.0 for v in (cx, cy, w, h)):
            problems.append(f"{where}:{number}: coordinates must be normalised to 0-1, got "
                            f"{' '.join(fields[1:])}")
        else:
            boxes.append(Box(label, cx, cy, w, h))
    return boxes, problems


def scan_yolo(root: Path, fractions: SplitFractions | None = None) -> DetectionData:
    """Read the YOLO layout under ``root``; bad label files are listed and their images skipped.

    Raises:
        TrainingError: the layout or class names are missing, or no image is usable.
    """
    fractions = fractions or SplitFractions()
    if not is_yolo_layout(root):
        raise TrainingError(f"{root}: not the YOLO layout; {LAYOUT_HINT}")
    classes = read_class_names(root)
    images: list[LabelledImage] = []
    problems: list[str] = []
    for path in image_files(root / "images"):
        inside = path.relative_to(root / "images")
        label_file = (root / "labels" / inside).with_suffix(".txt")
        where = label_file.relative_to(root).as_posix()
        try:
            text = label_file.read_text("utf-8")
        except FileNotFoundError:
            problems.append(f"{where}: missing (image images/{inside.as_posix()} skipped; an "
                            "empty file marks an image with no objects)")
            continue
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"{where}: cannot read: {e}")
            continue
        boxes, bad = parse_label_lines(text, where, len(classes))
        if bad:
            problems.extend(bad)
            continue
        relative = path.relative_to(root).as_posix()
        images.append(LabelledImage(path, relative, tuple(boxes), split_of(relative, fractions)))
    if not images:
        raise TrainingError(f"{root}: no usable labelled images ({len(problems)} problems; "
                            f"first: {problems[0] if problems else 'no images'}); {LAYOUT_HINT}")
    for problem in problems:
        log.warning("%s", problem)
    return DetectionData(root, classes, tuple(images), tuple(problems))
