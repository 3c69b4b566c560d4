"""Storage: the defect log's one entry point for the station (a critical-path sink and its threads).

``Storage.publish`` sits in the pipeline's sinks *before* the PLC: it writes the record to the
journal (one ``write``; fsync on request), hands it to the writer's queue without waiting, and
hands the frame to the image archive; it never touches the database, so a locked or vanished
database cannot stall the cycle, and a verdict the PLC received is always in the journal first.
``Storage.finish`` (an :class:`~aoi.events.EventBus` subscriber) records the final cycle time,
which is only known once the PLC write is done. Where an inspection went (its row's UUID, its
archived image) is kept by inspection id, ``Storage.stored(inspection_id)``; the result itself is
frozen and stays as the pipeline made it.

Leaving the ``with`` block stops the archive (after writing what it holds), then the writer
(after committing what is queued and journaled, within ``stop_timeout_s``, 10 s), then closes the
journal; anything not committed then is replayed at the next start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from aoi.config import StorageConfig
from aoi.storage.archive import Archive
from aoi.storage.db import DB_ERRORS, Database, default_data_dir, default_url
from aoi.storage.errors import JournalError, JournalUnavailable, StorageError
from aoi.storage.health import HealthSnapshot, StorageHealth
from aoi.storage.ids import last_inspection_id
from aoi.storage.journal import Entry, Journal, free_bytes, free_space
from aoi.storage.records import cycle_record, inspection_record, line_record, recipe_record
from aoi.storage.tables import new_uuid
from aoi.storage.writer import Writer
from aoi.types import InspectionResult, LineAnswer

log = logging.getLogger(__name__)

#: How many recent inspections ``Storage.stored`` remembers: well over what the EventBus holds
#: (256 results per subscriber), so ``finish`` always finds the inspection it follows.
STORED_KEEP = 4096
#: How many PLC answers ``record_line`` keeps for inspections not published yet.
EARLY_KEEP = 256
#: Free space the journal's disk needs before a station that ran out of it takes parts again.
JOURNAL_MIN_FREE_BYTES = 64 * 1024


@dataclass(frozen=True)
class StoredInspection:
    """Where Storage put one inspection: its row's key, and its image when archived."""

    inspection_id: int
    uuid: str
    image_path: str | None
    #: The result's ``timestamp_utc``: tells this inspection from a later one with the same id
    #: (a new pipeline after a recipe change counts from 1 again).
    timestamp_utc: float


class Storage:
    """The station's defect log: journal, background writer, image archive, database."""

    def __init__(
        self,
        config: StorageConfig,
        *,
        station_id: str,
        database_url: str | None = None,
        data_dir: Path | None = None,
        stop_timeout_s: float = 10.0,
        segment_bytes: int = 4 << 20,
    ) -> None:
        data_dir = data_dir or default_data_dir()
        self.config = config
        self.station_id = station_id
        self.url = database_url or config.database_url or default_url(data_dir)
        self.journal_dir = config.journal_dir or data_dir / "journal"
        self.archive_dir = config.archive_dir or data_dir / "archive"
        self.stop_timeout_s = stop_timeout_s
        self.health = StorageHealth()
        self.db = Database(
            self.url,
            sqlite_synchronous=config.sqlite_synchronous,
            busy_timeout_ms=config.busy_timeout_ms,
        )
        self.health.database = self.db.display
        self.journal = Journal(
            self.journal_dir, segment_bytes=segment_bytes, fsync=config.journal_fsync
        )
        self.writer: Writer | None = None
        self.archive: Archive | None = None
        self._lock = threading.Lock()
        self._stored: OrderedDict[int, StoredInspection] = OrderedDict()
        #: PLC answers that came before their inspection was published (a part the link
        #: abandoned: INSPECTION_TIMEOUT, STATION_STOPPING), by inspection id.
        self._early: OrderedDict[int, LineAnswer] = OrderedDict()
        #: The journal refused the last record (set and cleared under ``_lock``).
        self._journal_failing = False
        #: Told at once, on the cycle's thread, when the journal refuses an inspection (the
        #: station drops READY before the PLC can start another part).
        self.on_journal_refused: Callable[[str], None] | None = None
        self._recipes: set[str] = set()
        self._open = False

    # -- life cycle ---------------------------------------------------------------------------

    def __enter__(self) -> Storage:
        try:
            self.journal.open()
            self._check_room()
            self._start_threads(self._migrate())
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self._open = True
        return self

    def _check_room(self) -> None:
        """A journal opened on a (nearly) full disk takes no part until there is room."""
        free = free_bytes(self.journal_dir)
        if free is not None and free < JOURNAL_MIN_FREE_BYTES:
            self._journal_failing = True
            text = (
                f"the journal {self.journal_dir} has {free_space(self.journal_dir)} free at "
                "start-up: parts are answered ERROR until there is room"
            )
            log.warning("storage: %s", text)
            self.health.raise_alarm("journal", text)

    def _migrate(self) -> bool:
        """Bring the schema to head; False when the database is unreachable (retried later)."""
        try:
            self.db.upgrade()
        except DB_ERRORS as err:
            # The station inspects on; the writer migrates when the database is back.
            reason = str(err.orig or err).splitlines()[0]
            log.warning("storage: database %s unavailable at start-up: %s", self.db.display, reason)
            self.health.raise_alarm(
                "database",
                f"database {self.db.display} unavailable at start-up ({reason}); records are "
                f"kept in the journal {self.journal_dir}",
            )
            return False
        return True

    def _start_threads(self, schema_ready: bool) -> None:
        self.writer = Writer(
            self.db,
            self.journal,
            self.health,
            queue_size=self.config.queue_size,
            batch_rows=self.config.batch_rows,
            flush_interval_s=self.config.flush_interval_ms / 1000,
            stop_timeout_s=self.stop_timeout_s,
            schema_ready=schema_ready,
        )
        self.writer.start()
        if self.config.archive_images:
            self.archive = Archive(
                self.archive_dir,
                self.health,
                ok_sample_rate=self.config.ok_sample_rate,
                retention_days=self.config.retention_days,
                min_free_gb=self.config.min_free_gb,
                queue_size=self.config.archive_queue_size,
            )
            self.archive.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open = False
        try:
            if self.archive is not None:
                self.archive.stop()
            if self.writer is not None:
                self.writer.stop()
        finally:
            committed = self.writer.committed if self.writer is not None else None
            self.journal.close(committed=committed)
            self.db.dispose()

    # -- the critical path --------------------------------------------------------------------

    def publish(self, result: InspectionResult) -> StoredInspection:
        """Journal the inspection and queue it for the database and the archive; never waits.

        Returns where it went (also kept for :meth:`stored`, once it is in the journal).
        """
        if not self._open:
            msg = f"storage {self.db.display}: publish() outside its with block"
            raise StorageError(msg)
        record_uuid = new_uuid()
        paths = self.archive.plan(result, record_uuid) if self.archive is not None else None
        record = inspection_record(
            result,
            record_uuid,
            self.station_id,
            str(paths.image) if paths else None,
            str(paths.preview) if paths else None,
        )
        stored = StoredInspection(
            result.inspection_id,
            str(record_uuid),
            str(paths.image) if paths else None,
            result.timestamp_utc,
        )
        if result.recipe_hash not in self._recipes:
            self._recipes.add(result.recipe_hash)
            self._append(recipe_record(result.recipe_name, result.recipe_hash, "", time.time()))
        # The inspection itself must be in the journal before the PLC hears its verdict.
        self._append(record, durable=True)
        self.health.count("published")
        # Remembered only now: whoever finds it (finish) appends after the inspection record.
        self._remember(stored)
        with self._lock:
            early = self._early.pop(result.inspection_id, None)
        if early is not None:
            self._append(line_record(stored.uuid, early))
        if paths is not None and self.archive is not None:
            self.archive.submit(result, paths)
        return stored

    def _remember(self, stored: StoredInspection) -> None:
        with self._lock:
            self._stored[stored.inspection_id] = stored
            self._stored.move_to_end(stored.inspection_id)
            while len(self._stored) > STORED_KEEP:
                self._stored.popitem(last=False)

    def stored(self, inspection_id: int) -> StoredInspection | None:
        """Where the latest inspection with this id went (None: not published, or long ago)."""
        with self._lock:
            return self._stored.get(inspection_id)

    def _append(self, record: dict[str, object], *, durable: bool = False) -> bool:
        """Journal then queue; False when the record is in neither (lost).

        ``durable``: the record must be in the journal (an inspection whose verdict the PLC is
        about to hear); when the journal refuses it, :class:`JournalUnavailable` is raised and
        the record goes nowhere. Other records (the final cycle time, recipe texts) go to the
        database only while the journal refuses.
        """
        assert self.writer is not None
        with self._lock:
            try:
                entry = self.journal.append(record)
            except JournalError as err:
                self.health.count("journal_failures")
                if not self._journal_failing:  # one line per episode, not one per record
                    log.warning("storage: %s; parts are answered ERROR until it can", err)
                self._journal_failing = True
                self.health.raise_alarm(
                    "journal",
                    f"the journal {self.journal_dir} cannot be written ({err}; "
                    f"{free_space(self.journal_dir)} free): parts are answered ERROR until it can",
                )
                if durable:
                    msg = f"the defect log cannot record the verdict: {err}"
                    if self.on_journal_refused is not None:
                        self.on_journal_refused(msg)
                    raise JournalUnavailable(msg) from err
                pos = self.journal.position
                return self.writer.offer(Entry(record, pos, pos, journaled=False))
            if self._journal_failing:
                self._journal_failing = False
                log.warning("storage: the journal %s is written again", self.journal_dir)
            self.health.clear_alarm("journal")
            self.writer.offer(entry)
            return True

    def journal_ready(self) -> bool:
        """Whether the next inspection can be journaled: True unless the journal refused the
        last record and its disk still has less than :data:`JOURNAL_MIN_FREE_BYTES` free."""
        if not self._journal_failing:
            return True
        return (free_bytes(self.journal_dir) or 0) >= JOURNAL_MIN_FREE_BYTES

    # -- off the critical path ----------------------------------------------------------------

    def finish(self, result: InspectionResult) -> None:
        """Record the final cycle time (known after the PLC write); subscribe it to the EventBus."""
        stored = self.stored(result.inspection_id)
        if not self._open or stored is None or stored.timestamp_utc != result.timestamp_utc:
            return
        self._append(cycle_record(stored.uuid, result.cycle_ms, result.over_budget))

    def record_line(self, answer: LineAnswer) -> None:
        """Store what the PLC was told about an inspection, beside the inspection's verdict.

        Called on the PLC link's thread. An answer that comes before its inspection was
        published (the link gave up on the part) waits until :meth:`publish` finds it.
        """
        if not self._open:
            return
        with self._lock:
            stored = self._stored.get(answer.inspection_id)
            if stored is None:
                self._early[answer.inspection_id] = answer
                while len(self._early) > EARLY_KEEP:
                    self._early.popitem(last=False)
                return
        self._append(line_record(stored.uuid, answer))

    def note_recipe(self, name: str, content_hash: str, path: Path | None) -> None:
        """Record the content of a recipe the station inspects with (call on load or change)."""
        content = ""
        if path is not None:
            try:
                content = path.read_text(encoding="utf-8")
            except OSError as err:
                log.warning("storage: recipe %s not recorded (%s)", path, err)
        self._recipes.add(content_hash)
        self._append(recipe_record(name, content_hash, content, time.time()))

    def last_inspection_id(self) -> int:
        """The highest inspection id this station gave (database or journal): a restarted
        station numbers on from there, so ids stay unique for the life of the database."""
        return last_inspection_id(self.db, self.journal, self.station_id)

    def status(self) -> HealthSnapshot:
        """Counters and alarms now (for the GUI's health panel and the CLI's summary)."""
        if self._open and self.writer is not None and not self.writer.alive:
            self.health.raise_alarm(
                "writer",
                "storage writer stopped unexpectedly (see the log); records wait in the "
                f"journal {self.journal_dir} until the station restarts",
            )
        return self.health.snapshot()
