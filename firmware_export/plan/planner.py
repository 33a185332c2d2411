"""A pure reproduction of TFLite Micro's greedy memory planner.

TFLM places every non-constant tensor (and every kernel scratch buffer) in the "head" of the tensor
arena with ``GreedyMemoryPlanner`` (``tensorflow/lite/micro/memory_planner/``). This module
computes the same offsets from the same inputs, so the head size can be known before a board is
ever flashed:

* buffers are taken largest first; among equal sizes the buffer added *last* comes first (TFLM
  fills its sort array from the back and sorts it with a stable bubble sort);
* each buffer goes at the lowest offset where it fits in a gap between the already placed buffers
  whose lifetimes overlap its own (inclusive: a buffer last used at step 3 and one first used at
  step 3 never share memory);
* buffers with a fixed ("offline planned") offset are placed first, where they are told.

Sizes are taken as given; callers round them up to TFLM's 16-byte alignment
(:func:`align_up`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ARENA_ALIGNMENT = 16  # MicroArenaBufferAlignment()


def align_up(size: int, alignment: int = ARENA_ALIGNMENT) -> int:
    """``size`` rounded up to a multiple of ``alignment``."""
    return -(-size // alignment) * alignment


@dataclass(frozen=True)
class BufferRequest:
    """One buffer to place: its size and the first and last step (inclusive) it is alive."""

    size: int
    first_used: int
    last_used: int
    offline_offset: int | None = None

    def overlaps_in_time(self, other: BufferRequest) -> bool:
        return not (self.first_used > other.last_used or other.first_used > self.last_used)


class GreedyMemoryPlanner:
    """``add_buffer`` / ``max_size`` / ``offsets``, like TFLM's ``MicroMemoryPlanner``."""

    def __init__(self) -> None:
        self._buffers: list[BufferRequest] = []
        self._offsets: list[int] | None = None

    @property
    def buffers(self) -> tuple[BufferRequest, ...]:
        return tuple(self._buffers)

    def add_buffer(self, size: int, first_used: int, last_used: int,
                   offline_offset: int | None = None) -> int:
        """Register a buffer and return its index.

        Raises:
            ValueError: a negative size, a lifetime that ends before it starts, or a negative
                offline offset.
        """
        if size < 0:
            raise ValueError(f"buffer size (={size}) must be >= 0")
        if last_used < first_used:
            raise ValueError(f"last_used (={last_used}) must be >= first_used (={first_used})")
        if offline_offset is not None and offline_offset < 0:
            raise ValueError(f"offline_offset (={offline_offset}) must be >= 0")
        self._buffers.append(BufferRequest(size, first_used, last_used, offline_offset))
        self._offsets = None
        return len(self._buffers) - 1

    def offsets(self) -> list[int]:
        """The offset of every buffer, in the order they were added."""
        if self._offsets is None:
            self._offsets = _place(self._buffers)
        return list(self._offsets)

    def max_size(self) -> int:
        """Bytes from the start of the plan to the end of its highest buffer."""
        offsets = self.offsets()
        return max((o + b.size for o, b in zip(offsets, self._buffers, strict=True)), default=0)


def placement_order(buffers: Sequence[BufferRequest]) -> list[int]:
    """Indices in the order TFLM places them: offline ones as added, then largest first."""
    offline = [i for i, b in enumerate(buffers) if b.offline_offset is not None]
    online = [i for i, b in enumerate(buffers) if b.offline_offset is None]
    # TFLM stores online buffers back to front, then stable-sorts by descending size.
    online.reverse()
    online.sort(key=lambda i: -buffers[i].size)
    return offline + online


def _place(buffers: Sequence[BufferRequest]) -> list[int]:
    offsets = [0] * len(buffers)
    placed: list[int] = []  # indices, kept sorted by offset (ties: earlier placement first)
    for index in placement_order(buffers):
        wanted = buffers[index]
        if wanted.offline_offset is not None:
            offset = wanted.offline_offset
        else:
            offset = _first_fit(wanted, placed, buffers, offsets)
        offsets[index] = offset
        position = len(placed)
        for k, other in enumerate(placed):
            if offsets[other] > offset:
                position = k
                break
        placed.insert(position, index)
    return offsets


def _first_fit(wanted: BufferRequest, placed: Sequence[int], buffers: Sequence[BufferRequest],
               offsets: Sequence[int]) -> int:
    candidate = 0
    for other in placed:
        if not wanted.overlaps_in_time(buffers[other]):
            continue
        if offsets[other] - candidate >= wanted.size:
            return candidate
        candidate = max(candidate, offsets[other] + buffers[other].size)
    return candidate


def find_overlaps(buffers: Sequence[BufferRequest], offsets: Sequence[int]
                  ) -> list[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j``, alive at the same time whose bytes overlap. Empty = valid."""
    found = []
    for i, a in enumerate(buffers):
        for j in range(i + 1, len(buffers)):
            b = buffers[j]
            if a.size == 0 or b.size == 0 or not a.overlaps_in_time(b):
                continue
            if offsets[i] < offsets[j] + b.size and offsets[j] < offsets[i] + a.size:
                found.append((i, j))
    return found


def lower_bound(buffers: Iterable[BufferRequest]) -> int:
    """Most bytes alive at any one step: no placement can use less."""
    events: dict[int, int] = {}
    for b in buffers:
        events[b.first_used] = events.get(b.first_used, 0) + b.size
        events[b.last_used + 1] = events.get(b.last_used + 1, 0) - b.size
    live = peak = 0
    for step in sorted(events):
        live += events[step]
        peak = max(peak, live)
    return peak
