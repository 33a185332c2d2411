"""Dequantize, top-k and threshold on plain arrays."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edge.runtime.postprocess import Classification, classify_scores, dequantize, top_k


def test_uint8_dequantize_widens_before_subtracting_the_zero_point():
    raw = np.array([[0, 128, 255]], np.uint8)
    expected = np.array([-64.0, 0.0, 63.5], np.float32)
    np.testing.assert_array_equal(dequantize(raw, 0.5, 128), expected)


def test_int8_and_float_outputs():
    raw = np.array([-128, 0, 127], np.int8)
    expected = np.array([0, 0.5, 255 / 256], np.float32)
    np.testing.assert_array_equal(dequantize(raw, 1 / 256, -128), expected)
    scores = np.array([[0.25, 0.75]], np.float32)
    np.testing.assert_array_equal(dequantize(scores, 0.0, 0), scores[0])


@given(hnp.arrays(np.uint8, st.integers(1, 50)), st.integers(0, 255))
def test_dequantize_matches_python_integers(raw, zero_point):
    expected = np.array([(int(v) - zero_point) for v in raw], np.float32) * np.float32(0.25)
    np.testing.assert_array_equal(dequantize(raw, 0.25, zero_point), expected)


def test_top_k_orders_best_first_and_keeps_index_order_on_ties():
    scores = np.array([0.1, 0.5, 0.2, 0.5, 0.0], np.float32)
    assert top_k(scores, 3) == [(1, 0.5), (3, 0.5), (2, float(np.float32(0.2)))]
    assert top_k(scores, 10)[-1] == (4, 0.0)
    assert top_k(scores, 0) == []
    assert top_k(scores, 5, threshold=0.5) == [(1, 0.5), (3, 0.5)]


@given(hnp.arrays(np.float32, st.integers(1, 300), elements=st.floats(0, 1, width=32)),
       st.integers(1, 20), st.floats(0, 1))
def test_top_k_agrees_with_sorting(scores, k, threshold):
    expected = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
    got = top_k(scores, k, threshold)
    assert [i for i, _ in got] == [i for i in expected if scores[i] >= threshold]


def test_labels_attach_by_index_and_missing_ones_are_empty():
    scores = np.array([0.1, 0.7, 0.2], np.float32)
    assert classify_scores(scores, ("a", "b"), 2) == [
        Classification(1, "b", float(np.float32(0.7))),
        Classification(2, "", float(np.float32(0.2)))]
