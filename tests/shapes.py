"""Small image-classification data sets of simple shapes, as a person would have them.

Each image is a JPEG (160x120 by default) of one filled shape of a random colour, size and
place on a noisy, unevenly lit background: the kind of folder ``edge-model train`` is meant
for (50-300 images per class). Everything is a pure function of its arguments, so a data set
is fixed by (seed, kinds, count, size range, image size).

    python -m tests.shapes OUT --per-class 150 --seed 3 --kinds circle,square,triangle

Kinds: circle, square, triangle, star, cross, ring, bar (a long thin rectangle at any angle).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

KINDS = ("circle", "square", "triangle", "star", "cross", "ring", "bar")
DEFAULT_KINDS = ("circle", "square", "triangle")


def _background(rng: np.random.Generator, width: int, height: int, noise: float) -> np.ndarray:
    """A smooth random gradient with two tones, plus per-pixel noise and a few blobs."""
    base = rng.uniform(40, 215, 3)
    tilt = rng.uniform(-60, 60, (2, 3))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = (base[None, None, :] + xs[..., None] / width * tilt[0] + ys[..., None] / height
             * tilt[1])
    for _ in range(int(rng.integers(0, 4))):  # soft clutter blobs
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(5, width // 3)), int(rng.integers(5, height // 3)))
        blob = np.zeros((height, width), np.float32)
        cv2.ellipse(blob, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        blob = cv2.GaussianBlur(blob, (0, 0), 6)
        image += blob[..., None] * rng.uniform(-50, 50, 3)
    image += rng.normal(0, noise, image.shape)
    return image


def _polygon(kind: str, rng: np.random.Generator, cx: float, cy: float, r: float
             ) -> list[np.ndarray]:
    turn = rng.uniform(0, 2 * math.pi)

    def ring_points(n: int, radius: Sequence[float]) -> np.ndarray:
        angles = turn + np.arange(n) * 2 * math.pi / n
        radii = np.resize(np.asarray(radius, np.float64), n)
        return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)

    if kind == "square":
        return [ring_points(4, [r])]
    if kind == "triangle":
        return [ring_points(3, [r])]
    if kind == "star":
        return [ring_points(10, [r, r * 0.45])]
    if kind == "cross":
        w = r * 0.35
        arm = np.array([[-r, -w], [r, -w], [r, w], [-r, w]])
        rot = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
        across = arm[:, ::-1]
        return [arm @ rot.T + (cx, cy), across @ rot.T + (cx, cy)]
    if kind == "bar":
        w = r * 0.25
        bar = np.array([[-r, -w], [r, -w], [r, w], [-r, w]])
        rot = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
        return [bar @ rot.T + (cx, cy)]
    raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")


def draw_shape(rng: np.random.Generator, kind: str, width: int = 160, height: int = 120,
               size: tuple[float, float] = (0.15, 0.45), noise: float = 12.0) -> np.ndarray:
    """One RGB uint8 image of ``kind``; ``size``: the shape's diameter as a share of the
    shorter side (random in that range)."""
    image = _background(rng, width, height, noise)
    side = min(width, height)
    r = rng.uniform(*size) * side / 2
    cx = rng.uniform(r, width - r)
    cy = rng.uniform(r, height - r)
    colour = rng.uniform(0, 255, 3)
    while np.abs(colour - image[int(cy), int(cx)]).max() < 60:  # visible against its place
        colour = rng.uniform(0, 255, 3)
    layer = np.zeros((height, width), np.uint8)
    scale = 8  # sub-pixel coordinates for cv2's fixed-point drawing
    if kind == "circle":
        cv2.circle(layer, (round(cx * scale), round(cy * scale)), round(r * scale), 255, -1,
                   cv2.LINE_AA, 3)
    elif kind == "ring":
        cv2.circle(layer, (round(cx * scale), round(cy * scale)), round(r * 0.8 * scale), 255,
                   max(2, round(r * 0.35)), cv2.LINE_AA, 3)
    else:
        polygons = [np.round(p * scale).astype(np.int32) for p in _polygon(kind, rng, cx, cy, r)]
        for polygon in polygons:
            cv2.fillPoly(layer, [polygon], 255, cv2.LINE_AA, 3)
    alpha = layer.astype(np.float32)[..., None] / 255.0
    shaded = colour * rng.uniform(0.85, 1.15) + rng.normal(0, noise / 2, image.shape)
    image = image * (1 - alpha) + shaded * alpha
    return np.clip(image, 0, 255).astype(np.uint8)


def write_shapes(folder: Path, per_class: int, *, seed: int = 0,
                 kinds: Sequence[str] = DEFAULT_KINDS, image_size: tuple[int, int] = (160, 120),
                 size: tuple[float, float] = (0.15, 0.45), noise: float = 12.0,
                 quality: int = 90) -> Path:
    """Write ``folder/<kind>/<kind>_<i>.jpg``, ``per_class`` images of each kind."""
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    for k, kind in enumerate(kinds):
        target = folder / kind
        target.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, k])
        for i in range(per_class):
            rgb = draw_shape(rng, kind, *image_size, size=size, noise=noise)
            ok, data = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
            assert ok
            (target / f"{kind}_{i:04d}.jpg").write_bytes(data.tobytes())
    return folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.shapes", description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--per-class", type=int, default=150)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kinds", default=",".join(DEFAULT_KINDS))
    p.add_argument("--width", type=int, default=160)
    p.add_argument("--height", type=int, default=120)
    p.add_argument("--size", type=float, nargs=2, default=(0.15, 0.45), metavar=("MIN", "MAX"))
    p.add_argument("--noise", type=float, default=12.0)
    args = p.parse_args(argv)
    write_shapes(args.out, args.per_class, seed=args.seed, kinds=args.kinds.split(","),
                 image_size=(args.width, args.height), size=tuple(args.size), noise=args.noise)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
