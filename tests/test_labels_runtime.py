"""Label files and the 1001-vs-1000 background offset."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edge.errors import LabelError
from edge.runtime.labels import align_labels, read_labels

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def test_one_label_per_line(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("\ufeffcat\ndog\n\n", encoding="utf-8")
    assert read_labels(path) == ("cat", "dog")


def test_coral_index_label_pairs_with_gaps(tmp_path):
    path = tmp_path / "coco.txt"
    path.write_text("0  person\n1  bicycle\n3  motorcycle\n", encoding="utf-8")
    assert read_labels(path) == ("person", "bicycle", "", "motorcycle")


@pytest.mark.parametrize(("content", "match"), [
    (None, "no such labels file"),
    (b"", "has no labels"),
    (b"\xff\xfe\x00cat", "not UTF-8"),
])
def test_unusable_files_name_the_problem(tmp_path, content, match):
    path = tmp_path / "labels.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(LabelError, match=match):
        read_labels(path)
    with pytest.raises(LabelError, match="directory"):
        read_labels(tmp_path)


def test_background_offset_is_decided_by_counting():
    labels_1001 = ("background", *[f"c{i}" for i in range(1000)])
    assert align_labels(labels_1001, 1001) == labels_1001
    assert align_labels(labels_1001, 1000)[0] == "c0"
    assert align_labels(labels_1001[1:], 1001)[:2] == ("background", "c0")


def test_other_mismatches_warn_and_pad_or_cut(caplog):
    with caplog.at_level(logging.WARNING, logger="edge.runtime.labels"):
        assert align_labels(("a", "b"), 4, "x.txt") == ("a", "b", "", "")
        assert align_labels(("a", "b", "c", "d"), 2) == ("a", "b")
    assert "x.txt: 2 labels but the model has 4 classes" in caplog.text


def test_reference_imagenet_labels():
    path = DATA / "labels" / "imagenet_labels.txt"
    if not path.exists():
        pytest.skip(f"reference data not found at {DATA} (see ../shared/data/README.md)")
    labels = read_labels(path)
    assert len(labels) == 1001 and labels[0] == "background" and labels[89] == "macaw"
    assert align_labels(labels, 1000)[88] == "macaw"
