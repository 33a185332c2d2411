"""A bounded, ordered, on-disk queue of messages (SQLite), so a broker outage loses nothing.

The sink appends every message before it tries to deliver it; the delivery side reads from the
head in order and removes what the broker acknowledged. What is still in the file when the
process ends is delivered by the next run. When ``max_messages`` are waiting, the oldest is
dropped for the new one and counted.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from edge.errors import SinkError

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
)"""


@dataclass(frozen=True)
class Spooled:
    """One waiting message: its position (increasing), topic and payload."""

    id: int
    topic: str
    payload: bytes


class Spool:
    """The queue in one SQLite file; safe to use from several threads.

    Args:
        path: the database file (created with its folder).
        max_messages: messages kept at most; the oldest is dropped beyond that.

    Raises:
        SinkError: the file cannot be created or is not a spool.
    """

    def __init__(self, path: str | Path, max_messages: int = 100_000) -> None:
        if max_messages < 1:
            raise SinkError(f"spool size (={max_messages}) must be at least 1")
        self.path = Path(path)
        self.max_messages = max_messages
        self.dropped = 0
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._count = int(self._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
        except (OSError, sqlite3.Error) as e:
            raise SinkError(f"{self.path}: cannot open the message spool: {e}; check the "
                            "state folder (--state-dir) is writable, or delete a damaged "
                            "spool file") from e
        if self._count:
            log.info("%s holds %d undelivered message(s) from before", self.path, self._count)

    def __len__(self) -> int:
        return self._count

    def append(self, topic: str, payload: bytes) -> None:
        """Queue one message at the tail (dropping the oldest when full).

        Raises:
            SinkError: the disk refused the write.
        """
        with self._lock:
            try:
                if self._count >= self.max_messages:
                    excess = self._count - self.max_messages + 1
                    self._db.execute("DELETE FROM messages WHERE id IN (SELECT id FROM messages "
                                     "ORDER BY id LIMIT ?)", (excess,))
                    self._count -= excess
                    self.dropped += excess
                self._db.execute("INSERT INTO messages (topic, payload) VALUES (?, ?)",
                                 (topic, payload))
                self._count += 1
            except sqlite3.Error as e:
                raise SinkError(f"{self.path}: cannot queue a message: {e}") from e

    def peek(self, after: int, limit: int) -> list[Spooled]:
        """Up to ``limit`` messages after position ``after`` (0 = from the head), in order."""
        with self._lock:
            rows = self._db.execute("SELECT id, topic, payload FROM messages WHERE id > ? "
                                    "ORDER BY id LIMIT ?", (after, limit)).fetchall()
        return [Spooled(int(i), str(t), bytes(p)) for i, t, p in rows]

    def remove(self, ids: list[int]) -> None:
        """Forget delivered messages (ids no longer there are ignored)."""
        if not ids:
            return
        with self._lock:
            cursor = self._db.executemany("DELETE FROM messages WHERE id = ?",
                                          [(i,) for i in ids])
            self._count -= max(cursor.rowcount, 0)

    def close(self) -> None:
        """Close the file; safe to call twice."""
        with self._lock:
            db, self._db = self._db, None  # type: ignore[assignment]
        if db is not None:
            db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
