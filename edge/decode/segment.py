"""Segmentation outputs: a class index per pixel (ARG_MAX inside, as DeepLab) or per-class
scores. Pure numpy.

The class map stays on the model's grid; :func:`class_shares` counts the share of each class
over the part of the grid that shows the frame (a letterbox's borders are not the frame), and
:func:`mask_region` cuts that part out for resizing to the frame.
"""

from __future__ import annotations

import numpy as np

from edge.decode.geometry import Fit

INDEX = "index"
SCORES = "scores"


def segment_layout(shape: tuple[int, ...], dtype: str) -> str | None:
    """``index`` for ``[1, H, W]`` / ``[1, H, W, 1]`` integers, ``scores`` for ``[1, H, W, C]``
    (``C >= 2``), else None."""
    dims = tuple(shape)
    integer = dtype.startswith(("int", "uint"))
    if len(dims) == 3 and dims[0] == 1 and min(dims[1:]) > 1 and integer:
        return INDEX
    if len(dims) == 4 and dims[0] == 1 and min(dims[1:3]) > 1:
        if dims[3] == 1 and integer:
            return INDEX
        if dims[3] >= 2:
            return SCORES
    return None


def class_map(raw: np.ndarray, layout: str) -> np.ndarray:
    """``(H, W)`` class indices (uint8 when they fit, else int32)."""
    grid = np.asarray(raw)[0]
    if layout == SCORES:
        grid = grid.argmax(axis=-1)
    elif grid.ndim == 3:
        grid = grid[:, :, 0]
    top = int(grid.max()) if grid.size else 0
    return grid.astype(np.uint8 if 0 <= int(grid.min()) and top < 256 else np.int32)


def mask_region(mask: np.ndarray, content: tuple[int, int, int, int],
                input_size: tuple[int, int]) -> np.ndarray:
    """The part of a model-grid mask that shows the frame (a view).

    ``content`` is ``(left, top, width, height)`` in input pixels; the mask's grid may be
    coarser than the input, so the region is scaled to it.
    """
    rows, cols = mask.shape
    sx, sy = cols / input_size[0], rows / input_size[1]
    left, top, width, height = content
    x0, y0 = round(left * sx), round(top * sy)
    x1, y1 = max(x0 + 1, round((left + width) * sx)), max(y0 + 1, round((top + height) * sy))
    return mask[y0:y1, x0:x1]


def class_shares(mask: np.ndarray, classes: int = 0) -> np.ndarray:
    """Share of the pixels of each class index, ``(max(classes, top + 1),)`` float64."""
    counts = np.bincount(mask.ravel().astype(np.int64), minlength=classes)
    return counts / max(1, mask.size)


def mask_to_frame(mask: np.ndarray, fit: Fit, fill: int = 255) -> np.ndarray:
    """A mask covering the frame (:func:`mask_region`'s cut) at the frame's own size, by
    nearest neighbour; a centre crop's cut-off sides get ``fill``.

    Returns:
        ``(height, width)`` of the mask's dtype.
    """
    width, height = fit.frame_size
    if fit.pad_x < 0 or fit.pad_y < 0:  # a crop: the mask covers the crop box only
        left, top = -fit.pad_x / fit.scale_x, -fit.pad_y / fit.scale_y
        span_x, span_y = fit.input_size[0] / fit.scale_x, fit.input_size[1] / fit.scale_y
    else:
        left, top, span_x, span_y = 0.0, 0.0, float(width), float(height)
    rows, cols = mask.shape
    xs = np.floor((np.arange(width) + 0.5 - left) * cols / span_x).astype(np.int64)
    ys = np.floor((np.arange(height) + 0.5 - top) * rows / span_y).astype(np.int64)
    out = np.full((height, width), fill, mask.dtype)
    keep_x, keep_y = (xs >= 0) & (xs < cols), (ys >= 0) & (ys < rows)
    out[np.ix_(keep_y, keep_x)] = mask[np.ix_(ys[keep_y], xs[keep_x])]
    return out


def palette(classes: int) -> np.ndarray:
    """``(classes, 3)`` uint8 RGB colours, PASCAL VOC's colour map (class 0 black)."""
    index = np.arange(classes)
    colours = np.zeros((classes, 3), np.int64)
    for shift in range(7, -1, -1):
        for channel in range(3):
            colours[:, channel] |= ((index >> (3 * (7 - shift) + channel)) & 1) << shift
    return colours.astype(np.uint8)
