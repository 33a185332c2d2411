"""The synthetic digit scene: shapes, determinism, class coverage, and the live DemoScene."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.demo import labels_path, model_path
from edge.demo.scene import (
    LABELS,
    NOTHING,
    DemoScene,
    Glyph,
    Pose,
    _contrasting_rgb,
    make_glyph,
    place_glyph,
    render_background,
    render_sample,
)


def test_labels_are_digits_then_nothing_and_match_the_shipped_labels_file():
    assert LABELS == (*(str(d) for d in range(10)), "nothing")
    assert LABELS[NOTHING] == "nothing"
    assert labels_path().read_text().splitlines() == list(LABELS)
    assert model_path().is_file()


def test_render_sample_default_frame_is_rgb_uint8_320x240():
    frame, label = render_sample(np.random.default_rng(0))
    assert frame.shape == (240, 320, 3)
    assert frame.dtype == np.uint8
    assert isinstance(label, int) and 0 <= label < len(LABELS)


def test_render_sample_honours_size():
    frame, _ = render_sample(np.random.default_rng(1), size=(160, 96))
    assert frame.shape == (96, 160, 3)


def test_render_sample_is_deterministic_per_seed():
    a = [render_sample(np.random.default_rng(7)) for _ in range(2)]
    assert np.array_equal(a[0][0], a[1][0]) and a[0][1] == a[1][1]
    other, _ = render_sample(np.random.default_rng(8))
    assert not np.array_equal(a[0][0], other)


def test_every_class_appears_roughly_uniformly():
    rng = np.random.default_rng(3)
    counts = Counter(render_sample(rng, size=(96, 72))[1] for _ in range(550))
    assert set(counts) == set(range(len(LABELS)))
    assert min(counts.values()) >= 25  # expected 50 each


def test_frames_are_not_flat():
    rng = np.random.default_rng(4)
    for _ in range(20):
        frame, _ = render_sample(rng)
        assert frame.std() > 5


@settings(max_examples=200, deadline=None)
@given(luma=st.floats(0, 255), seed=st.integers(0, 2**32 - 1))
def test_ink_colour_always_contrasts_with_what_is_behind_it(luma, seed):
    rgb = _contrasting_rgb(np.random.default_rng(seed), luma)
    assert np.all(np.abs(rgb - luma) >= 90 - 1e-3)


def test_digit_glyphs_are_drawn_and_empty_scenes_exist():
    rng = np.random.default_rng(5)
    for label in range(10):
        glyph = make_glyph(rng, label, 100, 128.0)
        assert glyph is not None
        assert glyph.ink.max() > 0.9  # solid strokes
        assert 0.02 < glyph.ink.mean() < 0.5
    glyphs = [make_glyph(rng, NOTHING, 100, 128.0) for _ in range(60)]
    assert any(g is None for g in glyphs)  # no foreground at all
    assert any(g is not None for g in glyphs)  # a letter or symbol instead


@settings(max_examples=60, deadline=None)
@given(
    cx=st.floats(-50, 370), cy=st.floats(-50, 290), angle=st.floats(-180, 180),
    scale=st.floats(0.2, 2.0),
)
def test_place_glyph_only_touches_pixels_inside_the_warped_patch(cx, cy, angle, scale):
    side = 40
    ink = np.ones((side, side), np.float32)
    red = np.array([255, 0, 0], np.float32)
    glyph = Glyph(ink, np.zeros_like(ink), red, np.zeros(3, np.float32))
    frame = np.zeros((240, 320, 3), np.float32)
    place_glyph(frame, glyph, Pose(cx, cy, angle, scale, np.zeros((4, 2))))
    ys, xs = np.nonzero(frame[..., 0])
    radius = side * scale / np.sqrt(2) + 2
    if len(xs):
        assert np.all(np.hypot(xs - cx, ys - cy) <= radius)
    assert not frame[..., 1:].any()
    assert frame.max() <= 255 + 1e-3


def test_background_has_the_requested_size_and_range():
    bg = render_background(np.random.default_rng(6), (64, 48))
    assert bg.shape == (48, 64, 3) and bg.dtype == np.float32
    assert 0 <= bg.min() and bg.max() <= 255


def test_demo_scene_is_deterministic_and_sized():
    a, b = DemoScene(seed=2, size=(160, 120)), DemoScene(seed=2, size=(160, 120))
    for _ in range(20):
        (fa, la), (fb, lb) = a.next_frame(), b.next_frame()
        assert fa.shape == (120, 160, 3) and fa.dtype == np.uint8
        assert np.array_equal(fa, fb) and la == lb


def test_demo_scene_changes_class_exactly_every_hold_frames():
    scene = DemoScene(seed=1, hold_frames=5)
    labels = [scene.next_frame()[1] for _ in range(50)]
    for start in range(0, 50, 5):
        held = labels[start : start + 5]
        assert len(set(held)) == 1
        assert held[0] == labels[start]
        if start:
            assert labels[start] != labels[start - 1]
    assert len(set(labels)) >= 5
    assert scene.label == labels[-1]


def test_demo_scene_moves_smoothly_within_a_hold():
    scene = DemoScene(seed=3, hold_frames=10)
    frames = [scene.next_frame()[0].astype(np.float32) for _ in range(40)]
    steps = [np.abs(frames[i] - frames[i - 1]).mean() for i in range(1, 40)]
    within = [s for i, s in enumerate(steps, start=1) if i % 10]
    across = [s for i, s in enumerate(steps, start=1) if i % 10 == 0]
    assert max(within) < 12  # sensor noise plus a little motion
    assert min(across) > 2 * max(within)
    assert len({f.tobytes() for f in frames}) == 40  # it does move


def test_demo_scene_rejects_a_bad_hold():
    with pytest.raises(ValueError, match="hold_frames"):
        DemoScene(hold_frames=0)


def test_demo_scene_is_cheap_enough_for_a_real_time_loop():
    """A 320x240 frame costs no more than a few times what the runtime's own resize of a
    640x480 camera frame to 224x224 costs (about one inference): a ratio of CPU times measured
    interleaved in this process, not a wall-clock limit."""
    import cv2

    scene = DemoScene(seed=4)
    scene.next_frame()
    camera = np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)
    ratios = []
    for _ in range(60):
        start = time.process_time()
        scene.next_frame()
        frame_cost = time.process_time() - start
        start = time.process_time()
        for _ in range(4):
            cv2.resize(camera, (224, 224), interpolation=cv2.INTER_AREA)
        resize_cost = (time.process_time() - start) / 4
        ratios.append(frame_cost / max(resize_cost, 1e-6))
    assert float(np.median(ratios)) < 8, np.median(ratios)
