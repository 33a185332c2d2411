"""Synthetic scenes of printed digits: the data set of the demo model and its live camera.

A scene is a cluttered background (gradients, shapes, lines, letters and symbols that are not
digits) with, in front of it, either one printed digit or no digit at all. The digit is drawn
with one of OpenCV's built-in Hershey fonts (several faces, strokes, italic), sometimes on a
paper card, then placed under a random rotation, scale and perspective, and the whole frame gets
random lighting, colour cast, blur and sensor noise.

Class indices follow :data:`LABELS`: index ``d`` is the digit ``d`` for ``d`` in 0..9, and index
10 is ``nothing`` (no digit in the frame; a large letter or symbol may be there instead).

Only numpy and OpenCV are used, so the scene can feed the runtime on boards without TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

LABELS: tuple[str, ...] = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "nothing")
NOTHING = LABELS.index("nothing")

_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_COMPLEX_SMALL,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
)
# Glyphs that cannot be mistaken for a digit (no O, I, l, S, Z, B, G, q, b, g, T, P, &, ?).
_NON_DIGITS = "ACEFHKMNRUVWXY#%*+=@<>"
_MAX_TILT_DEG = 25.0


@dataclass(frozen=True)
class Glyph:
    """A foreground object drawn once, ready to be placed under any pose.

    Attributes:
        ink: float32 (P, P) coverage of the ink, 0..1, centred in the patch.
        card: float32 (P, P) coverage of the paper card behind the ink (zeros if none).
        ink_rgb: ink colour.
        card_rgb: card colour.
    """

    ink: np.ndarray
    card: np.ndarray
    ink_rgb: np.ndarray
    card_rgb: np.ndarray


@dataclass(frozen=True)
class Pose:
    """Where a glyph lands in the frame: centre in pixels, rotation, scale and corner jitter."""

    cx: float
    cy: float
    angle_deg: float
    scale: float
    jitter: np.ndarray  # (4, 2) corner offsets as fractions of the patch size


def _draw_text(rng: np.random.Generator, text: str, height: int) -> np.ndarray:
    """Return a square float32 coverage patch with ``text`` centred and ``height`` pixels tall."""
    font = int(rng.choice(_FONTS)) | (cv2.FONT_ITALIC if rng.random() < 0.3 else 0)
    (tw, th), _ = cv2.getTextSize(text, font, 1.0, 1)
    font_scale = height / max(th, 1)
    thickness = max(1, round(height * rng.uniform(0.05, 0.13)))
    canvas_side = int(max(tw, th) * font_scale * 2 + 4 * thickness + 8)
    canvas = np.zeros((canvas_side, canvas_side), np.uint8)
    origin = (canvas_side // 4, canvas_side * 3 // 4)
    cv2.putText(canvas, text, origin, font, font_scale, 255, thickness, cv2.LINE_AA)
    x, y, w, h = cv2.boundingRect(canvas)
    side = int(max(w, h) * 1.6) + 2
    patch = np.zeros((side, side), np.uint8)
    ox, oy = (side - w) // 2, (side - h) // 2
    patch[oy : oy + h, ox : ox + w] = canvas[y : y + h, x : x + w]
    return patch.astype(np.float32) / 255.0


def _contrasting_rgb(rng: np.random.Generator, against_luma: float) -> np.ndarray:
    """A random colour whose brightness differs from ``against_luma`` by at least 90."""
    if against_luma > 128:
        top = max(against_luma - 90.0, 20.0)
        return rng.uniform(0.0, top, 3).astype(np.float32)
    bottom = min(against_luma + 90.0, 235.0)
    return rng.uniform(bottom, 255.0, 3).astype(np.float32)


def make_glyph(
    rng: np.random.Generator, label: int, height: int, background_luma: float
) -> Glyph | None:
    """Draw the foreground object of class ``label``; ``None`` means an empty scene.

    Args:
        rng: random source.
        label: class index into :data:`LABELS`.
        height: glyph height in pixels.
        background_luma: mean brightness behind the object, to keep the ink visible.
    """
    if label == NOTHING:
        if rng.random() < 0.3:
            return None
        length = 1 if rng.random() < 0.7 else 2
        text = "".join(rng.choice(list(_NON_DIGITS), length))
    else:
        text = LABELS[label]
    ink = _draw_text(rng, text, height)
    card = np.zeros_like(ink)
    card_rgb = np.zeros(3, np.float32)
    behind = background_luma
    if rng.random() < 0.5:
        side = ink.shape[0]
        margin = int(side * rng.uniform(0.12, 0.2))
        card[margin : side - margin, margin : side - margin] = 1.0
        card = cv2.GaussianBlur(card, (3, 3), 0)
        light = rng.random() < 0.8
        low, high = (170, 255) if light else (0, 80)
        card_rgb = rng.uniform(low, high, 3).astype(np.float32)
        behind = float(card_rgb.mean())
    return Glyph(ink, card, _contrasting_rgb(rng, behind), card_rgb)


def random_pose(rng: np.random.Generator, size: tuple[int, int], glyph_side: int) -> Pose:
    """A random pose that keeps a glyph patch of ``glyph_side`` pixels mostly inside the frame."""
    width, height = size
    half = glyph_side * 0.33
    cx = rng.uniform(min(half, width / 2), max(width - half, width / 2))
    cy = rng.uniform(min(half, height / 2), max(height - half, height / 2))
    jitter = rng.uniform(-0.08, 0.08, (4, 2))
    return Pose(cx, cy, rng.uniform(-_MAX_TILT_DEG, _MAX_TILT_DEG), 1.0, jitter)


def _warp_matrix(side: int, pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    src = np.array([[0, 0], [side, 0], [side, side], [0, side]], np.float32)
    corners = (src - side / 2) * pose.scale + pose.jitter * side * pose.scale
    theta = math.radians(pose.angle_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    rot = np.array([[cos, -sin], [sin, cos]], np.float32)
    dst = (corners @ rot.T + np.array([pose.cx, pose.cy], np.float32)).astype(np.float32)
    return cv2.getPerspectiveTransform(src, dst), dst


def place_glyph(frame: np.ndarray, glyph: Glyph, pose: Pose) -> None:
    """Composite ``glyph`` onto the float32 RGB ``frame`` in place."""
    height, width = frame.shape[:2]
    matrix, dst = _warp_matrix(glyph.ink.shape[0], pose)
    x0, y0 = np.maximum(np.floor(dst.min(axis=0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(dst.max(axis=0)).astype(int) + 1, (width, height))
    if x1 <= x0 or y1 <= y0:
        return
    shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
    patch = np.dstack([glyph.ink, glyph.card])
    layers = cv2.warpPerspective(patch, shift @ matrix, (int(x1 - x0), int(y1 - y0)))
    roi = frame[y0:y1, x0:x1]
    for coverage, rgb in ((layers[..., 1], glyph.card_rgb), (layers[..., 0], glyph.ink_rgb)):
        if not coverage.any():
            continue
        alpha = coverage[..., None]
        roi *= 1.0 - alpha
        roi += alpha * rgb


def render_background(rng: np.random.Generator, size: tuple[int, int],
                      clutter: bool = True) -> np.ndarray:
    """A float32 RGB background: a colour gradient with random shapes, lines and non-digits
    (only the gradient when ``clutter`` is False)."""
    corners = rng.integers(0, 256, (2, 2, 3)).astype(np.uint8)
    frame = cv2.resize(corners, size, interpolation=cv2.INTER_LINEAR)
    for _ in range(int(rng.integers(2, 10)) if clutter else 0):
        _draw_clutter(rng, frame, size)
    return frame.astype(np.float32)


def _draw_clutter(rng: np.random.Generator, frame: np.ndarray, size: tuple[int, int]) -> None:
    width, height = size
    color = tuple(int(c) for c in rng.integers(0, 256, 3))
    p1 = (int(rng.integers(-20, width + 20)), int(rng.integers(-20, height + 20)))
    p2 = (int(rng.integers(-20, width + 20)), int(rng.integers(-20, height + 20)))
    thickness = int(rng.choice([-1, 1, 2, 3, 5]))
    kind = rng.integers(0, 5)
    if kind == 0:
        cv2.line(frame, p1, p2, color, max(thickness, 1), cv2.LINE_AA)
    elif kind == 1:
        cv2.rectangle(frame, p1, p2, color, thickness, cv2.LINE_AA)
    elif kind == 2:
        radius = int(rng.integers(4, height // 3))
        cv2.circle(frame, p1, radius, color, thickness, cv2.LINE_AA)
    elif kind == 3:
        axes = (int(rng.integers(4, width // 4)), int(rng.integers(4, height // 4)))
        angle = float(rng.uniform(0, 180))
        cv2.ellipse(frame, p1, axes, angle, 0, float(rng.uniform(90, 360)), color, thickness)
    else:
        text = str(rng.choice(list(_NON_DIGITS)))
        font = int(rng.choice(_FONTS))
        scale = float(rng.uniform(0.6, 2.2))
        cv2.putText(frame, text, p1, font, scale, color, int(rng.integers(1, 4)), cv2.LINE_AA)


def finish_frame(rng: np.random.Generator, frame: np.ndarray, noise: float) -> np.ndarray:
    """Apply lighting, colour cast, optional blur and sensor noise; return RGB uint8."""
    height, width = frame.shape[:2]
    gain = rng.uniform(0.55, 1.25)
    slope = rng.uniform(-0.5, 0.5, 2)
    cast = rng.uniform(0.85, 1.15, 3)
    grid = np.array([[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]]) @ slope
    corners = (gain * (1.0 + grid)[:, None] * cast).reshape(2, 2, 3).astype(np.float32)
    frame = np.asarray(cv2.multiply(frame, cv2.resize(corners, (width, height))), np.float32)
    if rng.random() < 0.5:
        sigma = rng.uniform(0.3, 1.5)
        frame = cv2.GaussianBlur(frame, (0, 0), sigma)
    if noise > 0:
        frame += rng.standard_normal(frame.shape, dtype=np.float32) * np.float32(noise)
    return np.clip(frame, 0, 255, out=frame).astype(np.uint8)


def render_sample(
    rng: np.random.Generator, size: tuple[int, int] = (320, 240), label: int | None = None,
    clutter: bool = True,
) -> tuple[np.ndarray, int]:
    """Render one random scene.

    Args:
        rng: random source; the same generator state gives the same frame.
        size: frame (width, height) in pixels.
        label: class to show (index into :data:`LABELS`); None draws one at random.
        clutter: draw shapes, lines and non-digit glyphs behind the object (an easier scene
            without them learns in far fewer steps, for quick tests).

    Returns:
        An RGB uint8 frame of shape (height, width, 3) and its class index into :data:`LABELS`.
    """
    height = size[1]
    if label is None:
        label = int(rng.integers(0, len(LABELS)))
    frame = render_background(rng, size, clutter)
    glyph_height = int(height * rng.uniform(0.4, 0.72))
    glyph = make_glyph(rng, label, glyph_height, float(frame.mean()))
    if glyph is not None:
        place_glyph(frame, glyph, random_pose(rng, size, glyph.ink.shape[0]))
    return finish_frame(rng, frame, float(rng.uniform(0, 12))), label


def write_image_folder(folder: Path, per_class: int, *, seed: int = 0,
                       size: tuple[int, int] = (320, 240),
                       labels: Sequence[str] = LABELS,
                       save_size: tuple[int, int] | None = None,
                       clutter: bool = True) -> list[Path]:
    """Render ``per_class`` scenes of each of ``labels`` into ``folder/<label>/NNNNN.png``.

    The layout ``edge-model train`` reads. Each class draws from its own random stream
    (seed, class index), so the images of a class do not depend on which other classes are
    written.

    Args:
        folder: created if missing.
        per_class: images per class.
        seed: random seed.
        size: rendered frame (width, height).
        labels: which of :data:`LABELS` to render.
        save_size: squash-resize to this (width, height) with ``INTER_AREA`` before saving,
            as the runtime would (smaller files); None keeps ``size``.
        clutter: see :func:`render_sample`.

    Returns:
        The files written.
    """
    written = []
    for name in labels:
        label = LABELS.index(name)
        rng = np.random.default_rng([seed, label])
        target = folder / name
        target.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            frame, _ = render_sample(rng, size, label, clutter)
            if save_size is not None:
                frame = cv2.resize(frame, save_size, interpolation=cv2.INTER_AREA)
            path = target / f"{i:05d}.png"
            if not cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
                raise OSError(f"{path}: OpenCV could not write the image")
            written.append(path)
    return written


class DemoScene:
    """A live synthetic camera: one object drifting and turning, changing class every so often.

    Each frame reuses the background and glyph drawn at the last class change, re-warps only the
    glyph and adds one of a few pre-drawn sensor-noise fields, so a frame costs a few
    milliseconds.

    Args:
        seed: random seed; the same seed gives the same sequence of frames.
        size: frame (width, height) in pixels.
        hold_frames: frames shown per object before it changes to a new class.
    """

    def __init__(self, seed: int = 0, size: tuple[int, int] = (320, 240), hold_frames: int = 15):
        if hold_frames < 1:
            raise ValueError(f"hold_frames (={hold_frames}) must be >= 1")
        self._rng = np.random.default_rng(seed)
        self._size = size
        self._hold = hold_frames
        self._count = 0
        self._label = NOTHING
        self._background = np.zeros((size[1], size[0], 3), np.float32)
        self._glyph: Glyph | None = None
        self._light = 1.0
        shape = (size[1], size[0], 3)
        self._noise = [self._rng.standard_normal(shape, dtype=np.float32) * 4 for _ in range(6)]
        self._phase = self._rng.uniform(0, 2 * math.pi, 4)
        self._speed = self._rng.uniform(0.02, 0.05, 4)

    @property
    def label(self) -> int:
        """Ground-truth class of the object currently shown."""
        return self._label

    def _change_object(self) -> None:
        rng = self._rng
        label = int(rng.integers(0, len(LABELS)))
        while label == self._label:
            label = int(rng.integers(0, len(LABELS)))
        self._label = label
        self._background = render_background(rng, self._size)
        height = int(self._size[1] * rng.uniform(0.45, 0.7))
        self._glyph = make_glyph(rng, label, height, float(self._background.mean()))
        self._light = rng.uniform(0.75, 1.15)

    def _pose(self) -> Pose:
        width, height = self._size
        t = self._count * self._speed + self._phase
        cx = width / 2 + 0.28 * width * math.sin(t[0])
        cy = height / 2 + 0.2 * height * math.sin(t[1])
        angle = 0.8 * _MAX_TILT_DEG * math.sin(t[2])
        scale = 0.9 + 0.1 * math.sin(t[3])
        jitter = np.array([[0.04 * math.sin(t[3] + k), 0.0] for k in range(4)], np.float32)
        return Pose(cx, cy, angle, scale, jitter)

    def next_frame(self) -> tuple[np.ndarray, int]:
        """Return the next RGB uint8 frame of shape (height, width, 3) and its true class."""
        if self._count % self._hold == 0:
            self._change_object()
        frame = self._background.copy()
        if self._glyph is not None:
            place_glyph(frame, self._glyph, self._pose())
        frame *= self._light
        frame += self._noise[int(self._rng.integers(0, len(self._noise)))]
        self._count += 1
        return np.clip(frame, 0, 255, out=frame).astype(np.uint8), self._label
