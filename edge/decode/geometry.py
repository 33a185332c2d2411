"""Where a frame lands in the model's input, and back: squash, centre crop, letterbox. Pure.

A :class:`Fit` says how the frame was placed in the input: input pixel ``x_in`` shows frame
pixel ``(x_in - pad_x) / scale_x``. Boxes and points decoded in input pixels are mapped back to
the original frame with :meth:`Fit.boxes_to_frame` and :meth:`Fit.points_to_frame`.

The letterbox is Ultralytics' (``LetterBox`` with ``auto=False``, ``center=True``): one scale
``r = min(W/w, H/h)``, the frame resized to ``round(w*r) x round(h*r)`` and centred with grey
(114) borders of ``round(d - 0.1)`` pixels before and ``round(d + 0.1)`` after, ``d`` being
half the spare room.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SQUASH = "squash"
CROP = "crop"
LETTERBOX = "letterbox"
FITS = (SQUASH, CROP, LETTERBOX)
LETTERBOX_GREY = 114


@dataclass(frozen=True)
class Fit:
    """How a ``frame_size`` frame was placed into an ``input_size`` input.

    Attributes:
        frame_size: ``(width, height)`` of the original frame.
        input_size: ``(width, height)`` of the model input.
        scale_x: input pixels per frame pixel, horizontally.
        scale_y: likewise, vertically.
        pad_x: input x of the frame's left edge (negative when the frame was cropped).
        pad_y: input y of the frame's top edge.
        content: ``(left, top, width, height)`` of the input region the frame fills (all of
            it but the letterbox's borders).
    """

    frame_size: tuple[int, int]
    input_size: tuple[int, int]
    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    content: tuple[int, int, int, int]

    def boxes_to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """``(N, 4)`` boxes ``xmin, ymin, xmax, ymax`` in input pixels -> frame pixels, clipped
        to the frame."""
        out = np.empty(boxes.shape, np.float32)
        w, h = self.frame_size
        out[:, 0::2] = np.clip((boxes[:, 0::2] - self.pad_x) / self.scale_x, 0, w)
        out[:, 1::2] = np.clip((boxes[:, 1::2] - self.pad_y) / self.scale_y, 0, h)
        return out

    def points_to_frame(self, points: np.ndarray) -> np.ndarray:
        """``(N, 2)`` points ``x, y`` in input pixels -> frame pixels (not clipped)."""
        out = np.empty(points.shape, np.float32)
        out[:, 0] = (points[:, 0] - self.pad_x) / self.scale_x
        out[:, 1] = (points[:, 1] - self.pad_y) / self.scale_y
        return out


def fit_frame_to_input(frame_size: tuple[int, int], input_size: tuple[int, int],
                       mode: str) -> Fit:
    """The :class:`Fit` of ``mode`` (``squash``, ``crop`` or ``letterbox``).

    Raises:
        ValueError: unknown mode or an empty size.
    """
    (w, h), (iw, ih) = frame_size, input_size
    if min(w, h, iw, ih) < 1:
        raise ValueError(f"sizes must be positive (frame {w}x{h}, input {iw}x{ih})")
    if mode == SQUASH:
        return Fit(frame_size, input_size, iw / w, ih / h, 0.0, 0.0, (0, 0, iw, ih))
    if mode == CROP:
        left, top, cw, ch = crop_box(frame_size, input_size)
        sx, sy = iw / cw, ih / ch
        return Fit(frame_size, input_size, sx, sy, -left * sx, -top * sy, (0, 0, iw, ih))
    if mode == LETTERBOX:
        r = min(iw / w, ih / h)
        nw, nh = max(1, round(w * r)), max(1, round(h * r))  # a 1000x3 strip keeps a row
        left, top = round((iw - nw) / 2 - 0.1), round((ih - nh) / 2 - 0.1)
        return Fit(frame_size, input_size, r, r, float(left), float(top), (left, top, nw, nh))
    raise ValueError(f"fit (={mode!r}) must be one of {', '.join(FITS)}")


def crop_box(frame_size: tuple[int, int], input_size: tuple[int, int]
             ) -> tuple[int, int, int, int]:
    """``(left, top, width, height)`` of the largest centred region of the frame with the
    input's aspect ratio."""
    (cols, rows), (width, height) = frame_size, input_size
    if cols * height > rows * width:  # frame is wider than the input: trim left and right
        keep = max(1, round(rows * width / height))
        return (cols - keep) // 2, 0, keep, rows
    keep = max(1, round(cols * height / width))
    return 0, (rows - keep) // 2, cols, keep
