"""The append-only journal: every record is handed to the OS before its verdict reaches the PLC.

Records are JSON objects, one a line, in numbered segment files (``journal-00000001.jsonl``, ...)
that the publishing side appends to with one ``write`` each (``fsync`` on request). A position is
``(segment, byte offset)``; ``checkpoint.json`` names the position up to which the database is
known to hold every record, so start-up replays only what follows it. The checkpoint may lag (it
is written after the commit, without fsync): replay is idempotent because every record carries its
own UUID. Segments wholly before the checkpoint are deleted, so the journal stays a few segments
long while the database keeps up.

Each record's :class:`Entry` carries the position before and after it, so the writer can tell
whether the entries it got through its queue follow on from what it committed, or whether some
never reached the queue (then it reads them back from here).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from aoi.storage.errors import JournalError
from aoi.storage.journal_read import (
    Entry,
    Position,
    ReadResult,
    read_entries,
    segment_file,
    segment_numbers,
)

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.json"


def _plain(value: object) -> object:
    """numpy scalars as Python numbers (a stage may hand one on)."""
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    msg = f"journal records hold JSON values, got {type(value).__name__}"
    raise TypeError(msg)


def free_bytes(folder: Path) -> int | None:
    """Free bytes on ``folder``'s disk (None when it cannot be read)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def free_space(folder: Path) -> str:
    """Free space on ``folder``'s disk in words ("12.3 MB"), for messages about a full disk."""
    free = free_bytes(folder)
    if free is None:
        return "unknown space"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if free >= size:
            return f"{free / size:.1f} {unit}"
    return f"{free} bytes"


def encode(record: dict[str, Any]) -> bytes:
    """One journal line. NaN is written as Python's json writes it (and reads it back)."""
    return json.dumps(record, separators=(",", ":"), default=_plain).encode() + b"\n"


class Journal:
    """Segmented append-only JSON-lines journal in one folder.

    ``append`` belongs to the publishing side (the caller serialises calls to it); ``read``,
    ``save_checkpoint`` and ``prune`` belong to the writer thread.
    """

    def __init__(self, folder: Path, *, segment_bytes: int = 4 << 20, fsync: bool = False) -> None:
        self.folder = folder
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self._fd: int | None = None
        self._lock_fd: int | None = None
        #: A write failed part-way: the next line must go to a new segment.
        self._torn = False
        self.segment = 0
        self._size = 0
        self._pos: Position = (0, 0)
        #: Where this run's records begin: entries before it were written by an earlier run.
        self.start: Position = (0, 0)
        #: The highest inspection id journaled (this run or, from the checkpoint, any before):
        #: ids stay unique even when the database cannot be read at start and the segments
        #: holding the last ids were pruned.
        self.last_id = 0

    # -- publishing side ---------------------------------------------------------------------

    def open(self) -> None:
        """Open a new segment after every existing one (earlier runs' segments stay for replay)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            msg = f"journal folder {self.folder} cannot be created ({err})"
            raise JournalError(msg) from err
        try:
            self._lock()
            checkpoint = self.load_checkpoint()
            segments = self.segments()
            end = checkpoint
            if segments:
                last = segments[-1]
                end = max(end, (last, self.segment_path(last).stat().st_size))
            self._pos = self.start = end
            self._open_segment(max(end[0], segments[-1] if segments else 0) + 1)
        except OSError as err:  # a full disk (ENOSPC), a read-only or failing one
            self._release_lock()
            msg = (
                f"journal {self.folder} cannot be written ({err.strerror or err}); "
                f"{free_space(self.folder)} free on its disk"
            )
            raise JournalError(msg) from err

    def _lock(self) -> None:
        """Hold ``journal.lock``: two stations (or two runs) on one journal would corrupt it."""
        path = self.folder / "journal.lock"
        try:
            import fcntl
        except ImportError:  # Windows: one station per PC is the installer's promise
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            msg = (
                f"journal {self.folder} is in use by another process (pid {holder}); "
                "give each station its own [storage] journal_dir"
            )
            raise JournalError(msg) from err
        self._lock_fd = fd  # held from here on, so a failing write below still releases it
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    def segment_path(self, number: int) -> Path:
        """The file of segment ``number`` (``segments()`` lists the numbers present)."""
        return segment_file(self.folder, number)

    def _open_segment(self, number: int) -> None:
        path = self.segment_path(number)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as err:
            msg = f"journal segment {path} cannot be opened for appending ({err})"
            raise JournalError(msg) from err
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self.segment, self._size = fd, number, 0

    @property
    def position(self) -> Position:
        """The end of the journal: where the next record's line will begin."""
        return self._pos

    def append(self, record: dict[str, Any]) -> Entry:
        """Write one record as one line; raises :class:`JournalError` when the OS refuses."""
        if self._fd is None:
            msg = f"journal {self.folder} is not open"
            raise JournalError(msg)
        try:
            line = encode(record)
        except (TypeError, ValueError) as err:
            msg = f"journal {self.folder}: record cannot be encoded ({err})"
            raise JournalError(msg) from err
        if self._torn:
            self._open_segment(self.segment + 1)  # JournalError while the disk still refuses
            self._torn = False
        if self._size and self._size + len(line) > self.segment_bytes:
            self._open_segment(self.segment + 1)
        try:
            view = memoryview(line)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            if self.fsync:
                os.fsync(self._fd)
        except OSError as err:
            # A partial line may be on disk. Cutting it off frees space, so it works on a full
            # disk: the record was refused whole and the segment ends on a whole line, with no
            # "torn line" for a reader to count as damage. Where even that fails, the next line
            # starts a new segment (the reader skips the torn line as one torn by a crash).
            written = len(line) - len(view)
            if written and not self._cut(self._size):
                self._size += written
                self._pos = (self.segment, self._size)
                self._torn = True
            msg = f"journal segment {self.segment_path(self.segment)} cannot be written ({err})"
            raise JournalError(msg) from err
        prev = self._pos
        self.last_id = max(self.last_id, int(record.get("inspection_id") or 0))
        self._size += len(line)
        self._pos = (self.segment, self._size)
        return Entry(record, prev, self._pos)

    def _cut(self, size: int) -> bool:
        """Truncate the open segment back to ``size`` bytes; False when the OS refuses."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, size)
        except OSError as err:
            log.warning("journal %s: a partial line could not be cut off (%s)", self.folder, err)
            return False
        return True

    def close(self, *, committed: Position | None = None) -> None:
        """Close the open segment; with ``committed`` at the journal's end, delete it too."""
        try:
            if self._fd is None:
                return
            os.close(self._fd)
            self._fd = None
            if self._size == 0:  # nothing written this run
                self.segment_path(self.segment).unlink(missing_ok=True)
            if committed is not None and committed >= self._pos:
                self.save_checkpoint(self._pos)
                self.prune((self.segment + 1, 0))
        finally:
            self._release_lock()

    # -- writer side -------------------------------------------------------------------------

    def segments(self) -> list[int]:
        """Numbers of the segment files present, oldest first."""
        return segment_numbers(self.folder)

    def load_checkpoint(self) -> Position:
        path = self.folder / CHECKPOINT
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            self.last_id = max(self.last_id, int(raw.get("last_inspection_id", 0)))
            return int(raw["segment"]), int(raw["offset"])
        except FileNotFoundError:
            return (0, 0)
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("%s is unreadable (%s): replaying the whole journal", path, err)
            return (0, 0)

    def save_checkpoint(self, pos: Position) -> None:
        path = self.folder / CHECKPOINT
        tmp = path.with_suffix(".tmp")
        try:
            state = {"segment": pos[0], "offset": pos[1], "last_inspection_id": self.last_id}
            tmp.write_text(json.dumps(state), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as err:
            # Only start-up replay reads it, and replay is idempotent: a stale one costs time.
            log.warning("journal checkpoint %s cannot be written (%s)", path, err)

    def prune(self, committed: Position) -> int:
        """Delete segments wholly before ``committed`` and every outbox's position; returns how
        many (a publisher's unpublished records stay, however long its broker is down)."""
        committed = min([committed, *outbox_floors(self.folder)])
        removed = 0
        for number in self.segments():
            if number >= committed[0] or (number == self.segment and self._fd is not None):
                break
            try:
                self.segment_path(number).unlink()
                removed += 1
            except OSError as err:
                log.warning("journal segment %s cannot be deleted (%s)", number, err)
        return removed

    def read(self, start: Position, max_entries: int, block_bytes: int = 1 << 20) -> ReadResult:
        """Up to ``max_entries`` records after ``start``, in journal order (:func:`read_entries`;
        the segment this journal appends to is the one still being written)."""
        writing = self.segment if self._fd is not None else None
        return read_entries(self.folder, self.segments(), start, max_entries, writing, block_bytes)


def outbox_floors(folder: Path) -> list[Position]:
    """The positions of the publishers' outboxes (``outbox-*.json``, aoi/storage/outbox.py)."""
    floors = []
    for path in folder.glob("outbox-*.json"):
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            floors.append((int(raw["segment"]), int(raw["offset"])))
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("%s is unreadable (%s): no segment is pruned", path, err)
            floors.append((0, 0))
    return floors
