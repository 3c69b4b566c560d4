"""The plant outbox (aoi/storage/outbox.py): journal records out to a broker, none lost or repeated.

The sink here is an in-memory broker that can be taken down (the real brokers are in
tests/app/plant/); the journal, writer, database and pruning are the station's own.
"""

from __future__ import annotations

import threading
from pathlib import Path

from storage_helpers import wait_for

from aoi.config import StorageConfig
from aoi.storage import Storage
from aoi.storage.outbox import Outbox, OutboxEvent, PublishError
from aoi.types import LineAnswer, Verdict


class MemoryBroker:
    """A broker in memory: keeps every message it acknowledged, duplicates included."""

    name = "memory"

    def __init__(self) -> None:
        self.up = threading.Event()
        self.all: list[OutboxEvent] = []

    @property
    def got(self) -> list[OutboxEvent]:
        """The inspections acknowledged (recipe events aside)."""
        return [e for e in self.all if e.kind == "inspection"]

    def connect(self) -> None:
        if not self.up.is_set():
            raise PublishError("memory broker is down")

    def send(self, event: OutboxEvent) -> None:
        if not self.up.is_set():
            raise PublishError("memory broker went down")
        self.all.append(event)

    def close(self) -> None:
        pass


def _storage(tmp_path: Path) -> Storage:
    config = StorageConfig(
        journal_dir=tmp_path / "journal",
        archive_images=False,
        flush_interval_ms=20,
        min_free_gb=0.0,
    )
    # ~1 kB a record: a segment holds two or three inspections and is pruned soon after.
    return Storage(
        config,
        station_id="s1",
        database_url=f"sqlite:///{tmp_path / 'aoi.db'}",
        data_dir=tmp_path,
        segment_bytes=2048,
    )


def _inspect(storage: Storage, make_result, n: int) -> list[int]:
    ids = []
    for _ in range(n):
        r = make_result(Verdict.NG, 2)
        storage.publish(r)
        storage.finish(r)
        storage.record_line(LineAnswer(r.inspection_id, Verdict.NG))
        ids.append(r.inspection_id)
    return ids


def test_an_outage_longer_than_a_segment_loses_and_repeats_nothing(tmp_path, make_result):
    broker = MemoryBroker()
    with _storage(tmp_path) as storage:
        journal = storage.journal
        with Outbox(journal, broker, station_id="s1", poll_s=0.01, backoff_max_s=0.05) as box:
            first_segment = journal.segment
            ids = _inspect(storage, make_result, 30)  # the broker is down all along
            wait_for(lambda: storage.health.snapshot().committed == 30, what="database commit")
            # The database has every record and the writer moved on many segments, but the
            # segments the outbox has not published are still there.
            assert journal.segment > first_segment + 5
            assert journal.segment_path(first_segment).exists()
            assert box.connected is False and "down" in box.last_error
            broker.up.set()
            wait_for(lambda: len(broker.got) == 30, what="all published")
            ids += _inspect(storage, make_result, 10)  # more segments: the floor moves on
            wait_for(lambda: len(broker.got) == 40, what="the rest published")
            wait_for(lambda: storage.health.snapshot().committed == 40, what="commit")
            wait_for(
                lambda: not journal.segment_path(first_segment).exists(), what="pruned at last"
            )
        # A restart of the publisher resumes after what the broker acknowledged.
        with Outbox(journal, broker, station_id="s1", poll_s=0.01):
            ids += _inspect(storage, make_result, 5)
            wait_for(lambda: len(broker.got) == 45, what="after the restart")
    got = [e.payload["inspection_id"] for e in broker.got]
    assert got == ids  # every one, in order, once
    assert [e.message_id for e in broker.got] == [f"s1/inspection/{i}" for i in ids]
    recipes = [e for e in broker.all if e.kind == "recipe"]
    assert len(recipes) == 1 and recipes[0].payload["hash"] == "a" * 64
    first = broker.got[0].payload
    assert first["line_verdict"] == "NG" and first["verdict"] == "NG"
    assert len(first["defects"]) == 2 and first["defects"][0]["class_name"] == "spurious_copper"
    assert first["cycle_ms"] == 12.5 and first["serial"].startswith("SN")


def test_a_restart_of_the_station_resumes_from_the_acknowledged_position(tmp_path, make_result):
    broker = MemoryBroker()
    broker.up.set()
    with _storage(tmp_path) as storage, Outbox(storage.journal, broker, station_id="s1"):
        ids = _inspect(storage, make_result, 4)
        wait_for(lambda: len(broker.got) == 4, what="published")
    broker.up.clear()  # the broker is down when the station comes back
    with _storage(tmp_path) as storage:
        box = Outbox(storage.journal, broker, station_id="s1", poll_s=0.01, backoff_max_s=0.05)
        with box:
            ids += _inspect(storage, make_result, 3)
            wait_for(lambda: box.last_error != "", what="the outage noticed")
            assert box.connected is False and len(broker.got) == 4
            broker.up.set()
            wait_for(lambda: len(broker.got) == 7, what="published after the restart")
    assert [e.payload["inspection_id"] for e in broker.got] == ids


def test_an_inspection_without_its_line_record_goes_out_after_the_linger(tmp_path, make_result):
    broker = MemoryBroker()
    broker.up.set()
    with (
        _storage(tmp_path) as storage,
        Outbox(storage.journal, broker, station_id="s1", linger_s=0.2, poll_s=0.01),
    ):
        r = make_result(Verdict.OK, 0)
        storage.publish(r)  # the PLC never answered, no cycle record either
        wait_for(lambda: len(broker.got) == 1, what="published after the linger")
    assert broker.got[0].payload["line_verdict"] is None
    assert broker.got[0].payload["verdict"] == "OK"


def test_the_alarm_is_raised_before_the_outbox_reads_as_disconnected(tmp_path, make_result):
    """Whoever sees ``connected`` flip sees the alarm already: at the moment each alarm is
    raised, the flag still reads as before (a CI run once read "disconnected" with no alarm)."""
    broker = MemoryBroker()
    broker.up.set()
    seen: list[tuple[str | None, bool, str]] = []
    with _storage(tmp_path) as storage:
        box = Outbox(
            storage.journal,
            broker,
            station_id="s1",
            poll_s=0.01,
            backoff_max_s=0.05,
            on_alarm=lambda text: seen.append((text, box.connected, box.last_error)),
        )
        with box:
            _inspect(storage, make_result, 2)
            wait_for(lambda: len(broker.got) == 2, what="published")
            broker.up.clear()
            _inspect(storage, make_result, 1)
            wait_for(lambda: not box.connected, what="the outage noticed")
            down = [s for s in seen if s[0] is not None]
            assert down, seen  # deterministic: the alarm came before the flag
            assert down[0][1] is True and down[0][2] == down[0][0]
            broker.up.set()
            wait_for(lambda: box.connected and len(broker.got) == 3, what="back")
    assert seen[0] == (None, False, "")  # the first connect: cleared, then connected
    assert seen[-1] == (None, False, "")  # the reconnect: cleared before it reads connected


def test_caught_up_is_never_said_before_the_acknowledged_position_is_saved(tmp_path, make_result):
    # The plant host's stats (read by the station and by tests that then kill the host) say
    # caught_up from another thread: a save that acknowledges events must happen while those
    # events still count as pending, or a kill in between sends them again after a restart.
    broker = MemoryBroker()
    broker.up.set()
    saves: list[tuple[bool, bool]] = []  # (caught_up at the save, the save moved `sent`)
    with _storage(tmp_path) as storage:
        box = Outbox(storage.journal, broker, station_id="s1", poll_s=0.01)
        save = box._save
        last = [box.sent]

        def watched(position, sent):
            saves.append((box.caught_up, sent != last[0]))
            last[0] = sent
            save(position, sent)

        box._save = watched  # type: ignore[method-assign]
        with box:
            _inspect(storage, make_result, 6)
            wait_for(lambda: len(broker.got) == 6 and box.caught_up, what="all acknowledged")
    assert any(moved for _, moved in saves)
    assert [moved for caught_up, moved in saves if caught_up and moved] == []
