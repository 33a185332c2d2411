"""Detection data in the YOLO layout, per-cell targets and centroid matching (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.decode.centroids import CentroidSpec
from edge.errors import TrainingError
from edge.modelbuild.detect import (
    cell_targets,
    cell_weights,
    flip_boxes,
    match_centroids,
    total,
)
from edge.modelbuild.yolo_layout import Box, parse_label_lines, read_class_names, scan_yolo


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((12, 16, 3), 90, np.uint8))


def _layout(root: Path, labels: dict[str, str | None], names: str = "nut\nbolt\n") -> Path:
    (root / "labels").mkdir(parents=True)
    (root / "classes.txt").write_text(names)
    for stem, text in labels.items():
        _image(root / "images" / f"{stem}.png")
        if text is not None:
            target = root / "labels" / f"{stem}.txt"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    return root


def test_good_files_are_read_with_nested_folders_and_empty_labels(tmp_path: Path) -> None:
    root = _layout(tmp_path / "d", {"a": "0 0.5 0.5 0.1 0.2\n1 0.1 0.9 0.05 0.05\n",
                                     "train/b": "", "train/c": "1 1 0 1 1"})
    data = scan_yolo(root)
    assert data.classes == ("nut", "bolt")
    by_name = {i.relative: i.boxes for i in data.images}
    assert by_name == {"images/a.png": (Box(0, 0.5, 0.5, 0.1, 0.2), Box(1, 0.1, 0.9, 0.05, 0.05)),
                       "images/train/b.png": (), "images/train/c.png": (Box(1, 1, 0, 1, 1),)}
    assert data.problems == ()
    assert data.objects() == {"nut": 1, "bolt": 2}


def test_bad_labels_are_listed_with_file_and_line_and_their_images_skipped(
        tmp_path: Path) -> None:
    root = _layout(tmp_path / "d", {"ok": "0 0.5 0.5 0.1 0.1",
                                     "range": "0 .5 .5 .1 .1\n2 .5 .5 .1 .1",
                                     "outside": "1 1.2 0.5 0.1 0.1", "short": "1 0.5 0.5",
                                     "words": "x y z w h", "missing": None})
    data = scan_yolo(root)
    assert [i.relative for i in data.images] == ["images/ok.png"]
    problems = "\n".join(data.problems)
    assert "labels/range.txt:2: class 2 is out of range 0..1" in problems
    assert "labels/outside.txt:1: coordinates must be normalised to 0-1" in problems
    assert "labels/short.txt:1: expected 'class cx cy w h'" in problems
    assert "labels/words.txt:1: not numbers" in problems
    assert "labels/missing.txt: missing" in problems and "empty file" in problems


def test_an_image_that_does_not_decode_is_left_to_the_loader(tmp_path: Path) -> None:
    root = _layout(tmp_path / "d", {"ok": ""})
    (root / "images" / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "labels" / "broken.txt").write_text("")
    assert len(scan_yolo(root).images) == 2  # decoding happens when pixels are loaded


def test_class_names_from_data_yaml_as_list_or_mapping(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("path: .\nnames: [person, 'hard hat']\n")
    assert read_class_names(tmp_path) == ("person", "hard hat")
    (tmp_path / "data.yaml").write_text("names:\n  1: b\n  0: a\n")
    assert read_class_names(tmp_path) == ("a", "b")
    (tmp_path / "data.yaml").write_text("names:\n  0: a\n  2: c\n")
    with pytest.raises(TrainingError, match=r"0\.\.1"):
        read_class_names(tmp_path)
    (tmp_path / "data.yaml").write_text("names: [a\n")
    with pytest.raises(TrainingError, match="not valid YAML"):
        read_class_names(tmp_path)


def test_not_the_layout_and_nothing_usable_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="not the YOLO layout"):
        scan_yolo(tmp_path)
    root = _layout(tmp_path / "d", {"a": "9 .5 .5 .1 .1"})
    with pytest.raises(TrainingError, match=r"no usable labelled images .*class 9"):
        scan_yolo(root)


def test_parse_label_lines_skips_blank_lines() -> None:
    boxes, problems = parse_label_lines("\n0 0.25 0.75 0.5 0.5\n\n", "x.txt", 1)
    assert boxes == [Box(0, 0.25, 0.75, 0.5, 0.5)] and problems == []


def test_targets_put_each_object_at_its_centre_cell() -> None:
    boxes = [(Box(0, 0.0, 0.0, 0.1, 0.1), Box(1, 0.99, 0.5, 0.1, 0.1), Box(0, 1.0, 1.0, 0, 0)),
             ()]
    t = cell_targets(boxes, 4)
    assert t.shape == (2, 4, 4)
    assert t[0, 0, 0] == 1 and t[0, 2, 3] == 2 and t[0, 3, 3] == 1
    assert int((t[0] > 0).sum()) == 3 and not t[1].any()
    w = cell_weights(t, 25.0)
    assert w[0, 0, 0] == 25.0 and w[0, 1, 1] == 1.0
    assert flip_boxes(boxes[0])[1] == Box(1, pytest.approx(0.01), 0.5, 0.1, 0.1)


def test_centroid_matching_counts_hits_misses_and_false_alarms() -> None:
    grid = np.zeros((4, 4, 3), np.float32)
    grid[..., 0] = 1.0
    grid[1, 1] = [0, 0.9, 0]   # a nut near the nut at (1.5, 1.5) cells: hit
    grid[3, 3] = [0, 0.8, 0]   # a nut where there is none: false alarm
    grid[0, 3] = [0, 0, 0.7]   # a bolt two cells from the bolt: outside 1.5 cells
    objects = [Box(0, 1.5 / 4, 1.5 / 4, 0.1, 0.1), Box(1, 1.5 / 4, 0.5 / 4, 0.1, 0.1)]
    scores = match_centroids(grid, objects, CentroidSpec(threshold=0.5), 2)
    assert [(s.tp, s.fp, s.fn) for s in scores] == [(1, 1, 0), (0, 1, 1)]
    summed = total([scores, scores], 2)
    assert (summed[-1].tp, summed[-1].fp, summed[-1].fn) == (2, 4, 2)
    assert summed[-1].precision == pytest.approx(2 / 6) and summed[-1].recall == 0.5
    assert summed[-1].f1 == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))


def test_augmented_cells_move_with_their_objects() -> None:
    """After mirroring and whole-cell shifts, each target cell still holds its object's pixels."""
    from edge.modelbuild.detect import STRIDE, augment_cells

    rng = np.random.default_rng(3)
    pixels = np.zeros((8, 32, 32, 3), np.uint8)
    targets = np.zeros((8, 4, 4), np.int32)
    for n in range(8):
        y, x = divmod(n, 4)
        pixels[n, y * STRIDE:(y + 1) * STRIDE, x * STRIDE:(x + 1) * STRIDE] = 255
        targets[n, y, x] = 1 + n % 2
    out, cells = augment_cells(rng, pixels, targets)
    assert sorted(np.unique(cells).tolist()) == [0, 1, 2]
    for n in range(8):
        ((y, x),) = np.argwhere(cells[n] > 0)
        patch = out[n, y * STRIDE:(y + 1) * STRIDE, x * STRIDE:(x + 1) * STRIDE]
        assert patch.mean() > 150 > out[n].mean()  # bright square there, dark elsewhere
        assert cells[n, y, x] == targets[n].max()
