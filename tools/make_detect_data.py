"""Write a labelled detection data set in the YOLO layout: small shapes on noisy backgrounds.

Each image is ``WIDTHxHEIGHT`` (default 160x120) with 1-4 objects of the chosen kinds at random
places, sizes and colours over a noisy, gradient background; ``labels/NAME.txt`` has one
``class cx cy w h`` line per object (normalised), ``classes.txt`` the class names.

    python tools/make_detect_data.py DATA --images 600 --seed 1 --kinds disc,cross
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

KINDS = ("disc", "cross", "square", "triangle", "ring")


def _draw(image: np.ndarray, kind: str, cx: int, cy: int, r: int, colour: tuple[int, ...]) -> None:
    if kind == "disc":
        cv2.circle(image, (cx, cy), r, colour, -1, cv2.LINE_AA)
    elif kind == "ring":
        cv2.circle(image, (cx, cy), r, colour, max(2, r // 3), cv2.LINE_AA)
    elif kind == "square":
        cv2.rectangle(image, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
    elif kind == "cross":
        t = max(2, r // 2)
        cv2.rectangle(image, (cx - r, cy - t // 2), (cx + r, cy + t // 2), colour, -1)
        cv2.rectangle(image, (cx - t // 2, cy - r), (cx + t // 2, cy + r), colour, -1)
    elif kind == "triangle":
        pts = np.array([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], np.int32)
        cv2.fillPoly(image, [pts], colour, cv2.LINE_AA)
    else:
        raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    base = rng.integers(40, 216, size=3)
    tilt = rng.normal(0, 40, size=(2, 3))
    ys, xs = np.mgrid[0:height, 0:width]
    image = (base + xs[..., None] / width * tilt[0] + ys[..., None] / height * tilt[1]
             + rng.normal(0, rng.uniform(8, 30), size=(height, width, 3)))
    return np.clip(image, 0, 255).astype(np.uint8)


Label = tuple[int, float, float, float, float]


def make_image(rng: np.random.Generator, kinds: list[str], width: int, height: int,
               size: tuple[int, int]) -> tuple[np.ndarray, list[Label]]:
    """One image (BGR) and its labels ``(class, cx, cy, w, h)`` normalised."""
    image = _background(rng, width, height)
    boxes: list[Label] = []
    placed: list[tuple[int, int, int]] = []
    for _ in range(int(rng.integers(1, 5))):
        for _try in range(20):
            r = int(rng.integers(size[0], size[1] + 1))
            cx, cy = int(rng.integers(r, width - r)), int(rng.integers(r, height - r))
            if all((cx - x) ** 2 + (cy - y) ** 2 > (r + q + 6) ** 2 for x, y, q in placed):
                break
        else:
            continue
        cls = int(rng.integers(len(kinds)))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        _draw(image, kinds[cls], cx, cy, r, colour)
        placed.append((cx, cy, r))
        boxes.append((cls, cx / width, cy / height, 2 * r / width, 2 * r / height))
    return image, boxes


def write_dataset(folder: Path, images: int, seed: int, kinds: list[str], width: int = 160,
                  height: int = 120, size: tuple[int, int] = (5, 10)) -> None:
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    (folder / "classes.txt").write_text("".join(f"{k}\n" for k in kinds))
    for i in range(images):
        image, boxes = make_image(rng, kinds, width, height, size)
        cv2.imwrite(str(folder / "images" / f"img{i:05d}.jpg"), image,
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        (folder / "labels" / f"img{i:05d}.txt").write_text(
            "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in boxes))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kinds", default="disc,cross")
    parser.add_argument("--size", default="5,10", help="object radius range in pixels, MIN,MAX")
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=120)
    args = parser.parse_args(argv)
    lo, hi = (int(v) for v in args.size.split(","))
    write_dataset(args.folder, args.images, args.seed, args.kinds.split(","), args.width,
                  args.height, (lo, hi))
    print(f"wrote {args.images} images to {args.folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
