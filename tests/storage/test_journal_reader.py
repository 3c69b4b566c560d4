"""The journal read from outside the process that writes it (aoi/storage/journal_read.py): what
the plant publishers' process reads. Real files; the station's one write per record is cut in
two here to stand for a write the reader sees half done."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aoi.storage.journal import Journal
from aoi.storage.journal_read import JournalReader, segment_file


def _ids(entries: list[Any]) -> list[int]:
    return [e.record["i"] for e in entries]


def test_the_reader_follows_the_writer_across_segments_and_waits_for_a_whole_line(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "journal"
    journal = Journal(folder, segment_bytes=100)
    journal.open()
    seen: list[dict[str, Any]] = []
    reader = JournalReader(folder, on_record=seen.append)
    try:
        for i in range(12):  # 16-17 bytes a line: several segments
            journal.append({"t": "x", "i": i})
        assert reader.position == journal.position
        got = reader.read((0, 0), 100)
        assert _ids(got.entries) == list(range(12))
        assert got.position == journal.position
        assert len(journal.segments()) > 1
        assert [r["i"] for r in seen] == list(range(12))
        # Half a line at the end of the newest segment: left for the next read.
        newest = segment_file(folder, journal.segments()[-1])
        with newest.open("ab") as f:
            f.write(b'{"t":"x","i":1')
        half = reader.read(got.position, 100)
        assert half.entries == []
        assert half.position == got.position
        assert half.corrupt == 0
        with newest.open("ab") as f:
            f.write(b'2}\n')
        assert _ids(reader.read(got.position, 100).entries) == [12]
    finally:
        journal.close()


def test_the_readers_end_moves_to_a_new_segment_and_a_torn_line_before_it_is_skipped(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "journal"
    journal = Journal(folder)
    journal.open()
    journal.append({"t": "x", "i": 0})
    path = segment_file(folder, journal.segment)
    with path.open("ab") as f:
        f.write(b'{"t":"x","i":')  # a crash tore this line
    journal.close()
    reader = JournalReader(folder)
    before = reader.position
    assert before == (journal.segment, path.stat().st_size)
    again = Journal(folder)  # the station restarts: a new segment after every existing one
    again.open()
    try:
        again.append({"t": "x", "i": 1})
        assert reader.position == again.position  # the new segment is seen
        got = reader.read((0, 0), 100)
        assert _ids(got.entries) == [0, 1]
        assert got.corrupt == 1
    finally:
        again.close()
    assert os.listdir(folder)
