"""The synthetic demo scene as a frame source: frames that carry their own ground truth."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from edge.camera.base import Frame, FrameSource

log = logging.getLogger(__name__)
SHOWN_LABELS = 4


def truth_mismatch(labels: Sequence[str] | None) -> str | None:
    """Why the scene's ground truth cannot score a model with ``labels``, or None when it can.

    The truth is a class index into the scene's labels (0-9, nothing), so it scores only a
    model whose labels are exactly those, in that order.
    """
    from edge.demo.scene import LABELS

    if labels is None or tuple(labels) == LABELS:
        return None
    if not any(labels):
        return ("the model has no labels, so its classes cannot be matched to the scene's "
                f"({', '.join(LABELS)})")
    shown = ", ".join(map(repr, labels[:SHOWN_LABELS]))
    more = ", ..." if len(labels) > SHOWN_LABELS else ""
    return (f"the model's {len(labels)} labels ({shown}{more}) are not the demo scene's "
            f"({', '.join(LABELS)}); run the bundled demo model (no --model) to measure it")


class DemoSource(FrameSource):
    """:class:`edge.demo.scene.DemoScene` behind the :class:`FrameSource` interface.

    Each frame carries the class of the object it shows in ``Frame.truth``, so a run can report
    its own accuracy. The scene is rendered on demand, so it waits for the reader (not live).

    Args:
        seed: scene seed; the same seed gives the same frames.
        size: frame (width, height).
        hold_frames: frames per object before it changes class.
        labels: the labels of the model that will label the frames; when they are not the
            scene's, frames carry no truth (an accuracy would be meaningless) and
            :attr:`truth_note` says why. None: frames always carry the truth.
    """

    name = "demo"
    live = False

    def __init__(self, *, seed: int = 0, size: tuple[int, int] = (320, 240),
                 hold_frames: int = 15, labels: Sequence[str] | None = None) -> None:
        super().__init__()
        self.seed = seed
        self.size = size
        self.hold_frames = hold_frames
        self.truth_note = truth_mismatch(labels)
        self._scene: Any = None

    def open(self) -> None:
        from edge.demo.scene import DemoScene

        if self._scene is None:  # a reopen continues the same scene
            if self.truth_note is not None:
                log.warning("--camera demo: no accuracy is reported: %s", self.truth_note)
            self._scene = DemoScene(seed=self.seed, size=self.size, hold_frames=self.hold_frames)

    def close(self) -> None:
        """Nothing to release; the scene keeps its place."""

    def read(self) -> Frame | None:
        if self._scene is None:
            self.open()
        rgb, truth = self._scene.next_frame()
        return self._frame(rgb, time.monotonic_ns(),
                           int(truth) if self.truth_note is None else None)
