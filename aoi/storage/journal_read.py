"""Reading the journal's segment files, by the station's writer thread or by another process.

:class:`aoi.storage.journal.Journal` owns the files (it appends, checkpoints and prunes);
:func:`read_entries` is how both it and a :class:`JournalReader` read them. The reader is what
the plant publishers' own process (aoi/app/plant/host.py) reads through: it holds no lock and
writes nothing; the journal's end is the size of its newest segment, and a line that segment
does not end yet is left for the next read (the station's one ``write`` per record may still be
going on).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aoi.storage.errors import JournalError

log = logging.getLogger(__name__)

Position = tuple[int, int]

_SEGMENT = re.compile(r"journal-(\d{8})\.jsonl")


@dataclass(frozen=True, slots=True)
class Entry:
    """One record and where it lies in the journal (``prev == end`` when it is not in it)."""

    record: dict[str, Any]
    prev: Position
    end: Position
    journaled: bool = True


@dataclass(frozen=True, slots=True)
class ReadResult:
    entries: list[Entry]
    #: Where the next read starts: after the last complete line read or skipped.
    position: Position
    #: Lines that could not be parsed (torn by a crash, or damaged) and were skipped.
    corrupt: int


def segment_numbers(folder: Path) -> list[int]:
    """Numbers of the segment files present in ``folder``, oldest first."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for n in names if (m := _SEGMENT.fullmatch(n)))


def segment_file(folder: Path, number: int) -> Path:
    return folder / f"journal-{number:08d}.jsonl"


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or "t" not in record:
        return None
    return record


def read_entries(
    folder: Path,
    segments: list[int],
    start: Position,
    max_entries: int,
    writing: int | None,
    block_bytes: int = 1 << 20,
) -> ReadResult:
    """Up to ``max_entries`` records after ``start``, in journal order.

    ``writing`` is the segment still being appended to (None: none is). A trailing partial line
    in it is left for later; one in a closed segment (a crash tore it) is skipped, as are lines
    that are not JSON objects.
    """
    entries: list[Entry] = []
    pos, corrupt = start, 0
    for number in segments:
        if number < pos[0]:
            continue
        offset = pos[1] if number == pos[0] else 0
        closed = number != writing
        path = segment_file(folder, number)
        while len(entries) < max_entries:
            try:
                with path.open("rb") as f:
                    f.seek(offset)
                    data = f.read(block_bytes)
            except FileNotFoundError:
                break
            except OSError as err:
                msg = f"journal segment {path} cannot be read at byte {offset} ({err})"
                raise JournalError(msg) from err
            at_eof = len(data) < block_bytes
            i = 0
            while len(entries) < max_entries:
                nl = data.find(b"\n", i)
                if nl < 0:
                    break
                end = (number, offset + nl + 1)
                record = _parse(data[i:nl])
                if record is None:
                    corrupt += 1
                    log.warning("journal %s: skipped a damaged line at byte %d", path, offset + i)
                else:
                    entries.append(Entry(record, pos, end))
                pos, i = end, nl + 1
            if len(entries) >= max_entries:
                return ReadResult(entries, pos, corrupt)
            if not at_eof:
                if i == 0:
                    block_bytes *= 2  # one line longer than the block: read more of it
                offset += i
                continue
            if i < len(data):
                if not closed:
                    return ReadResult(entries, pos, corrupt)  # still being written
                corrupt += 1
                log.warning("journal %s: skipped a torn last line at byte %d", path, offset + i)
                pos = (number, offset + len(data))
            break
        if not closed:
            break
    return ReadResult(entries, pos, corrupt)


class JournalReader:
    """A read-only view of a journal folder another process writes (what an outbox needs).

    ``on_record`` sees every record read (the plant host learns each recipe's scale from its
    ``recipe`` record this way).
    """

    def __init__(
        self, folder: Path, on_record: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        self.folder = folder
        self.on_record = on_record
        self._newest: int | None = None

    @property
    def position(self) -> Position:
        """The journal's end: the newest segment's size (two stats while no segment is added)."""
        newest = self._newest
        if newest is not None and not segment_file(self.folder, newest + 1).exists():
            try:
                return newest, segment_file(self.folder, newest).stat().st_size
            except FileNotFoundError:
                pass
        segments = segment_numbers(self.folder)
        self._newest = segments[-1] if segments else None
        if self._newest is None:
            return (0, 0)
        try:
            return self._newest, segment_file(self.folder, self._newest).stat().st_size
        except FileNotFoundError:
            return (self._newest, 0)

    def read(self, start: Position, max_entries: int) -> ReadResult:
        segments = segment_numbers(self.folder)
        writing = segments[-1] if segments else None
        got = read_entries(self.folder, segments, start, max_entries, writing)
        if self.on_record is not None:
            for entry in got.entries:
                self.on_record(entry.record)
        return got
