"""A bounded, ordered, on-disk queue of messages (SQLite), so a broker outage loses nothing.

The sink appends every message before it tries to deliver it; the delivery side reads from the
head in order and removes what the broker acknowledged. What is still in the file when the
process ends is delivered by the next run.

A fault of the spool never stops the labels, only (at worst) MQTT delivery:

* **full**: at ``max_messages``, or when the spool's disk has less than ``min_free_bytes``
  free, the oldest message is dropped for each new one (counted in :attr:`Spool.dropped`, said
  once). Deleted pages are reused, so a spool at its size no longer grows its file.
* **disk full anyway** (another program filled it): the WAL is checkpointed and the oldest
  dropped; if the disk still refuses, the new message is dropped (counted, said once).
* **damaged** (not a database, malformed, a ``messages`` table of another schema): the file is
  moved aside as ``NAME.corrupt-<time>`` and a new spool started, with one warning line.
* **unusable** (the folder cannot be created or written): the spool lives in memory, bounded
  the same way, for this run only (one warning line).
* a read or delete that fails raises :class:`SpoolError`; the delivery thread retries it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from edge.errors import SinkError

log = logging.getLogger(__name__)

MIN_FREE_BYTES = 128 << 10  # the spool never takes the last 128 KiB of its disk
WAL_PAGES = 1000  # SQLite's default: the write-ahead log is folded back near 4 MB
LOW_WAL_PAGES = 16  # ... and near 64 KB when the disk has less than LOW_DISK_BYTES free
LOW_DISK_BYTES = 16 << 20
FREE_CHECK_S = 0.02  # how often the disk's free space is looked at, at most
_COLUMNS = [("id", "INTEGER", 1), ("topic", "TEXT", 0), ("payload", "BLOB", 0)]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
)"""
_DAMAGED = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}
_FULL = {"SQLITE_FULL"}


class SpoolError(SinkError):
    """Reading or deleting queued messages failed (the caller retries later)."""


class _DamagedError(Exception):
    """The file is not a spool of ours (the message says why)."""


@dataclass(frozen=True)
class Spooled:
    """One waiting message: its position (increasing), topic and payload."""

    id: int
    topic: str
    payload: bytes


def _error_name(e: Exception) -> str:
    return str(getattr(e, "sqlite_errorname", type(e).__name__))


def _text(value: object) -> str:
    """A topic as stored; anything else a foreign writer left becomes text (then rejected)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _blob(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")


def _free_bytes(folder: Path) -> int | None:
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


class Spool:
    """The queue in one SQLite file; safe to use from several threads.

    Args:
        path: the database file (created with its folder).
        max_messages: messages kept at most; the oldest is dropped beyond that.
        min_free_bytes: free space the spool leaves on its disk; below it, the oldest is
            dropped for each new message.

    Attributes:
        dropped: messages dropped to make room (or refused by a full disk).
        in_memory: True when the file could not be used and the queue lives in memory.
        moved_aside: where a damaged file was moved, if one was.

    Raises:
        SinkError: ``max_messages`` is below 1.
    """

    def __init__(self, path: str | Path, max_messages: int = 100_000, *,
                 min_free_bytes: int = MIN_FREE_BYTES) -> None:
        if max_messages < 1:
            raise SinkError(f"spool size (={max_messages}) must be at least 1")
        self.path = Path(path)
        self.max_messages = max_messages
        self.min_free_bytes = min_free_bytes
        self.dropped = 0
        self.in_memory = False
        self.moved_aside: Path | None = None
        self._said: set[str] = set()
        self._lock = threading.Lock()
        self._count = 0
        self._wal_pages = WAL_PAGES
        self._free_checked = float("-inf")
        self._low = False
        self._db: sqlite3.Connection | None = self._open()
        if self._count:
            log.info("%s holds %d undelivered message(s) from before", self.path, self._count)

    # --- opening ----------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        """The database: a damaged file is moved aside, an unusable one replaced by memory."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                return self._connect(str(self.path))
            except _DamagedError as e:
                self._move_aside(str(e))
            except sqlite3.DatabaseError as e:
                if _error_name(e) not in _DAMAGED:
                    raise
                self._move_aside(str(e))
            return self._connect(str(self.path))
        except (OSError, sqlite3.Error, _DamagedError) as e:
            log.warning("%s: cannot use the message spool (%s); queueing up to %d message(s) in "
                        "memory for this run only: check the state folder (--state-dir)",
                        self.path, e, self.max_messages)
            self.in_memory = True
            return self._connect(":memory:")

    def _connect(self, where: str) -> sqlite3.Connection:
        db = sqlite3.connect(where, check_same_thread=False, isolation_level=None, timeout=0.25)
        try:
            if where != ":memory:":
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
            columns = [(str(r[1]), str(r[2]).upper(), int(r[5]))
                       for r in db.execute("PRAGMA table_info(messages)")]
            if columns and columns != _COLUMNS:
                raise _DamagedError("a table 'messages' of another schema: "
                               + ", ".join(f"{n} {t}" for n, t, _ in columns))
            if where != ":memory:":
                check = db.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise _DamagedError(f"integrity check: {check}")
            db.execute(_SCHEMA)
            self._count = int(db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
        except BaseException:
            db.close()
            raise
        return db

    def _move_aside(self, why: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        os.replace(self.path, aside)
        for suffix in ("-wal", "-shm"):
            extra = Path(f"{self.path}{suffix}")
            if extra.exists():
                os.replace(extra, Path(f"{aside}{suffix}"))
        self.moved_aside = aside
        log.warning("%s is not a usable message spool (%s); moved it aside to %s and started a "
                    "new one", self.path, why, aside.name)

    # --- the queue --------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    def append(self, topic: str, payload: bytes) -> None:
        """Queue one message at the tail, making room as the module doc says; never raises."""
        with self._lock:
            db = self._db
            if db is None:
                return
            excess = 0
            low = self._disk_low()
            if self._count >= self.max_messages:
                excess = self._count - self.max_messages + 1
                self._say_once("max", "%s holds %d message(s) (--spool-max): dropping the oldest "
                               "for each new one (counted as dropped)", self.path,
                               self.max_messages)
            elif self._count and low:
                excess = 1
                self._say_once("disk", "%s: less than %d KiB free on its disk: the spool keeps "
                               "its size and drops the oldest message for each new one (counted "
                               "as dropped)", self.path, self.min_free_bytes >> 10)
            try:
                self._replace_oldest(db, excess, topic, payload)
                if low:  # keep the log small: its pages go back to the disk at once
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except (sqlite3.Error, ValueError) as e:  # ValueError: text SQLite cannot take
                self._append_failed(db, e, topic, payload)

    def _replace_oldest(self, db: sqlite3.Connection, excess: int, topic: str,
                        payload: bytes) -> None:
        """Delete the ``excess`` oldest and insert the new message, in one transaction."""
        if not excess:
            db.execute("INSERT INTO messages (topic, payload) VALUES (?, ?)", (topic, payload))
            self._count += 1
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            if excess:
                db.execute("DELETE FROM messages WHERE id IN (SELECT id FROM messages "
                           "ORDER BY id LIMIT ?)", (excess,))
            db.execute("INSERT INTO messages (topic, payload) VALUES (?, ?)", (topic, payload))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        dropped = min(excess, self._count)
        self._count += 1 - dropped
        self.dropped += dropped

    def _append_failed(self, db: sqlite3.Connection, e: Exception, topic: str,
                       payload: bytes) -> None:
        """One more try after a failed append (room made, damage replaced), else drop it."""
        name = _error_name(e)
        excess = 0
        if name in _DAMAGED and isinstance(e, sqlite3.Error):
            self._replace_damaged(e)
            db = self._db  # type: ignore[assignment]
        elif name in _FULL and self._count:
            try:  # give the log's pages back to the disk, then make room in the file
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            excess = max(1, self._count // 100)
        try:
            self._replace_oldest(db, excess, topic, payload)
            return
        except (sqlite3.Error, ValueError) as again:
            e = again
        self.dropped += 1
        self._say_once(f"append-{_error_name(e)}", "%s: cannot queue messages (%s): dropping "
                       "new ones while it lasts (counted as dropped)", self.path, e)

    def peek(self, after: int, limit: int) -> list[Spooled]:
        """Up to ``limit`` messages after position ``after`` (0 = from the head), in order.

        Raises:
            SpoolError: the file cannot be read now (try again later).
        """
        with self._lock:
            if self._db is None:
                return []
            try:
                rows = self._db.execute("SELECT id, topic, payload FROM messages WHERE id > ? "
                                        "ORDER BY id LIMIT ?", (after, limit)).fetchall()
            except sqlite3.Error as e:
                self._failed("read", e)
                return []
        return [Spooled(int(i), _text(t), _blob(p)) for i, t, p in rows]

    def remove(self, ids: list[int]) -> None:
        """Forget delivered messages (ids no longer there are ignored).

        Raises:
            SpoolError: the file refused the delete (try again later).
        """
        if not ids:
            return
        with self._lock:
            if self._db is None:
                return
            sql = f"DELETE FROM messages WHERE id IN ({','.join('?' * len(ids))})"
            try:
                try:
                    cursor = self._db.execute(sql, ids)
                except sqlite3.Error as e:
                    if _error_name(e) not in _FULL:
                        raise
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # room for the log
                    cursor = self._db.execute(sql, ids)
                if self._disk_low():
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as e:
                self._failed("delete from", e)
                return
            self._count -= max(cursor.rowcount, 0)

    def _failed(self, what: str, e: sqlite3.Error) -> None:
        """A damaged file is replaced (its messages are lost); anything else is raised."""
        if _error_name(e) in _DAMAGED:
            self._replace_damaged(e)
            return
        raise SpoolError(f"{self.path}: cannot {what} the message spool: {e}") from e

    def _replace_damaged(self, e: sqlite3.Error) -> None:
        """Called with the lock held: move the damaged file aside and open a new one."""
        if self._db is not None:
            self._db.close()
        lost = self._count
        self._count = 0
        self.dropped += lost
        try:
            self._move_aside(f"{e}; {lost} queued message(s) in it")
        except OSError:
            pass
        self._db = self._open()

    def _disk_low(self) -> bool:
        """Below ``min_free_bytes`` free; near it, the log is folded back more often (a log
        that held more than the disk has left could not be folded back into the file)."""
        if self.in_memory:
            return False
        now = time.monotonic()
        if now < self._free_checked + FREE_CHECK_S:
            return self._low
        self._free_checked = now
        free = _free_bytes(self.path.parent)
        if free is None:
            return False
        pages = LOW_WAL_PAGES if free < LOW_DISK_BYTES else WAL_PAGES
        if pages != self._wal_pages and self._db is not None:
            try:
                self._db.execute(f"PRAGMA wal_autocheckpoint={pages}")
                self._wal_pages = pages
            except sqlite3.Error:
                pass
        self._low = free < self.min_free_bytes
        return self._low

    def _say_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._said:
            self._said.add(key)
            log.warning(message, *args)

    def close(self) -> None:
        """Close the file; safe to call twice."""
        with self._lock:
            db, self._db = self._db, None
        if db is not None:
            db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
