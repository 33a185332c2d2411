"""The synthetic demo scene as a frame source: frames that carry their own ground truth."""

from __future__ import annotations

import time
from typing import Any

from edge.camera.base import Frame, FrameSource


class DemoSource(FrameSource):
    """:class:`edge.demo.scene.DemoScene` behind the :class:`FrameSource` interface.

    Each frame carries the class of the object it shows in ``Frame.truth``, so a run can report
    its own accuracy. The scene is rendered on demand, so it waits for the reader (not live).

    Args:
        seed: scene seed; the same seed gives the same frames.
        size: frame (width, height).
        hold_frames: frames per object before it changes class.
    """

    name = "demo"
    live = False

    def __init__(self, *, seed: int = 0, size: tuple[int, int] = (320, 240),
                 hold_frames: int = 15) -> None:
        super().__init__()
        self.seed = seed
        self.size = size
        self.hold_frames = hold_frames
        self._scene: Any = None

    def open(self) -> None:
        from edge.demo.scene import DemoScene

        if self._scene is None:  # a reopen continues the same scene
            self._scene = DemoScene(seed=self.seed, size=self.size, hold_frames=self.hold_frames)

    def close(self) -> None:
        """Nothing to release; the scene keeps its place."""

    def read(self) -> Frame | None:
        if self._scene is None:
            self.open()
        rgb, truth = self._scene.next_frame()
        return self._frame(rgb, time.monotonic_ns(), int(truth))
