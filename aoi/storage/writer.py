"""The background writer: commits journaled records to the database in batches, off the cycle.

It takes entries from a bounded queue and commits them every ``flush_interval`` or every
``batch_rows`` entries, in one transaction per batch, then records in the journal's checkpoint
how far the database is complete. Entries normally arrive through the queue in journal order;
when they do not follow on from what was committed (the queue was full, or a commit failed), the
writer reads the journal itself from the committed position until it has caught up. The same
catch-up replays, at start-up, what an earlier run journaled but did not commit.

When the database is unreachable, locked or full, the writer raises the ``database`` alarm,
keeps everything in the journal, retries with backoff (0.1 s doubling to 5 s) and catches up
when it recovers. A record the database refuses (a constraint, a malformed line) is set aside in
``rejected.jsonl`` beside the journal with a latched alarm, so one bad record cannot stall the
rest. Replay is idempotent: an inspection whose UUID is in the database already is skipped.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.exc import DataError, IntegrityError

from aoi.storage.db import DB_ERRORS, Database
from aoi.storage.health import StorageHealth
from aoi.storage.journal import Entry, Journal, Position, encode
from aoi.storage.records import (
    INSPECTION,
    RECIPE,
    UPDATE_FIELDS,
    defect_rows,
    inspection_row,
    utc,
)
from aoi.storage.tables import Defect, Inspection, RecipeSeen

log = logging.getLogger(__name__)

INSPECTIONS = cast(Table, Inspection.__table__)
DEFECTS = cast(Table, Defect.__table__)
RECIPES = cast(Table, RecipeSeen.__table__)

#: Errors of one record (malformed, or refused by a constraint): it is set aside, not retried.
RECORD_ERRORS: tuple[type[Exception], ...] = (
    IntegrityError,
    DataError,
    KeyError,
    TypeError,
    ValueError,
)

#: One UPDATE per kind of record that completes an inspection row after the fact.
_UPDATES = {
    kind: update(INSPECTIONS)
    .where(INSPECTIONS.c.uuid == bindparam("b_uuid"))
    .values({f: bindparam("b_" + f) for f in fields})
    for kind, fields in UPDATE_FIELDS.items()
}
_RECIPE_SEEN = (
    update(RECIPES)
    .where(RECIPES.c.content_hash == bindparam("b_hash"))
    .values(last_seen_at=bindparam("b_at"))
)
_RECIPE_CONTENT = (
    update(RECIPES)
    .where(RECIPES.c.content_hash == bindparam("b_hash"))
    .values(content=bindparam("b_content"))
)


class Writer:
    """One thread that owns all of the station's inserts."""

    def __init__(
        self,
        db: Database,
        journal: Journal,
        health: StorageHealth,
        *,
        queue_size: int = 4096,
        batch_rows: int = 200,
        flush_interval_s: float = 0.15,
        stop_timeout_s: float = 30.0,
        schema_ready: bool = True,
    ) -> None:
        self.db = db
        self.journal = journal
        self.health = health
        self.queue: queue.Queue[Entry] = queue.Queue(queue_size)
        self.batch_rows = batch_rows
        self.flush_interval_s = flush_interval_s
        self.stop_timeout_s = stop_timeout_s
        self.rejected_path = journal.folder / "rejected.jsonl"
        #: Everything before this journal position is in the database.
        self.committed: Position = journal.load_checkpoint()
        self._schema_ready = schema_ready
        self._catch_up_needed = True  # start-up replay
        self._carry: list[Entry] = []  # entries that are in the queue only (journal failed)
        self._checkpoint_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the publishing side ----------------------------------------------------------------

    def offer(self, entry: Entry) -> bool:
        """Queue an entry without waiting; False when the queue is full (it stays journaled)."""
        try:
            self.queue.put_nowait(entry)
        except queue.Full:
            self._catch_up_needed = True
            self.health.count("queue_overflows")
            self.health.raise_alarm(
                "queue",
                f"storage writer is {self.queue.maxsize} records behind: new records wait in "
                f"the journal {self.journal.folder} and are replayed from there",
            )
            return False
        return True

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aoi-storage-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Commit what is queued and journaled (for up to ``stop_timeout_s``), then end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.journal.save_checkpoint(self.committed)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.1
        deadline: float | None = None
        while True:
            stopping = self._stop.is_set()
            if stopping and deadline is None:
                deadline = time.monotonic() + self.stop_timeout_s
            try:
                if not self._schema_ready:
                    self.db.upgrade()
                    self._schema_ready = True
                if self._catch_up_needed:
                    self._catch_up()
                batch = self._collect(stopping)
                if batch:
                    self._commit_batch(batch)
                elif stopping:
                    self._catch_up()  # what was journaled but never queued
                    if self.queue.empty():
                        return
                backoff = 0.1
            except DB_ERRORS as err:
                self._failed(err)
                if deadline is not None and time.monotonic() >= deadline:
                    log.error(  # noqa: TRY400 (the reason was logged by _failed)
                        "storage writer stops with records not committed; they stay in the "
                        "journal %s and are replayed at the next start",
                        self.journal.folder,
                    )
                    return
                wait = backoff if deadline is None else min(backoff, deadline - time.monotonic())
                if not stopping:
                    self._stop.wait(wait)
                else:
                    time.sleep(max(0.0, wait))
                backoff = min(backoff * 2, 5.0)

    def _failed(self, err: Exception) -> None:
        reason = str(getattr(err, "orig", None) or err).splitlines()[0]
        self.health.failed(reason)
        if not self.health.has_alarm("database"):
            log.error("storage: database %s failed: %s", self.db.display, reason)
        self.health.raise_alarm(
            "database",
            f"database {self.db.display} is not taking records ({reason}); "
            f"they are kept in the journal {self.journal.folder} and retried",
        )
        self._catch_up_needed = True

    def _collect(self, stopping: bool) -> list[Entry]:
        """Up to ``batch_rows`` queued entries, after a ``flush_interval`` nap.

        The writer naps instead of blocking on the queue, so ``put_nowait`` on the cycle's
        thread never wakes it: no context switch is handed to the critical path.
        """
        if not stopping and self.queue.qsize() < self.batch_rows:
            self._stop.wait(self.flush_interval_s)
        batch: list[Entry] = []
        while len(batch) < self.batch_rows:
            try:
                batch.append(self.queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _commit_batch(self, batch: list[Entry]) -> None:
        fresh: list[Entry] = []
        pos = self.committed
        for e in batch:
            if not e.journaled:
                fresh.append(e)
            elif e.end <= self.committed:
                continue  # the catch-up read it from the journal already
            elif e.prev != pos:
                # Something between the committed position and this entry never reached the
                # queue: read it all back from the journal instead.
                self._carry.extend(x for x in batch if not x.journaled)
                self._catch_up_needed = True
                return
            else:
                fresh.append(e)
                pos = e.end
        self._apply([*self._carry, *fresh])
        self._carry.clear()
        self._advance(pos)

    def _catch_up(self) -> None:
        # Cleared first: an overflow while reading sets it again, and another round follows.
        self._catch_up_needed = False
        while True:
            got = self.journal.read(self.committed, self.batch_rows)
            if got.entries or self._carry:
                self._apply([*self._carry, *got.entries])
                self._carry.clear()
            if got.position != self.committed:
                self._advance(got.position)
            if got.corrupt:  # counted once: the position is past them now
                self.health.count("rejected", got.corrupt)
                self.health.raise_alarm(
                    "journal-damaged",
                    f"{self.health.snapshot().rejected} records set aside: damaged journal "
                    f"lines skipped in {self.journal.folder}",
                )
            if not got.entries:
                break
        if not self._catch_up_needed:
            self.health.clear_alarm("queue")

    def _advance(self, pos: Position) -> None:
        if pos > self.committed:
            new_segment = pos[0] != self.committed[0]
            self.committed = pos
            # The checkpoint only shortens start-up replay: once a second is enough (and
            # before a segment is deleted, so that replay never looks for it).
            now = time.monotonic()
            if new_segment or now - self._checkpoint_at >= 1.0:
                self.journal.save_checkpoint(pos)
                self._checkpoint_at = now
                if new_segment:
                    self.journal.prune(pos)
        self.health.clear_alarm("database")

    # -- one transaction --------------------------------------------------------------------

    def _apply(self, entries: list[Entry]) -> None:
        if not entries:
            return
        try:
            with self.db.write_connection() as conn, conn.begin():
                this_run, replayed = self._write(conn, entries)
        except RECORD_ERRORS as err:
            if len(entries) == 1:
                self._reject(entries[0], err)
                return
            log.warning("storage: a batch was refused (%s); writing its records one by one", err)
            for e in entries:
                self._apply([e])
            return
        self.health.clear_alarm("database")  # before the counts: no one sees both at once
        self.health.committed_batch(this_run, replayed)

    def _write(self, conn: Connection, entries: list[Entry]) -> tuple[int, int]:
        """Insert a batch; returns inspections of this run and of earlier runs written."""
        rows: dict[uuid.UUID, dict[str, Any]] = {}
        earlier: set[uuid.UUID] = set()
        records: dict[uuid.UUID, dict[str, Any]] = {}
        updates: dict[str, list[dict[str, Any]]] = {}
        recipes: dict[str, dict[str, Any]] = {}
        for e in entries:
            rec = e.record
            kind = rec["t"]
            if kind == INSPECTION:
                row = inspection_row(rec)
                rows[row["uuid"]] = row
                records[row["uuid"]] = rec
                if e.journaled and e.prev < self.journal.start:
                    earlier.add(row["uuid"])
            elif kind in UPDATE_FIELDS:  # completes a row: in this batch, or committed before
                u = uuid.UUID(rec["uuid"])
                values = {f: rec[f] for f in UPDATE_FIELDS[kind]}
                if u in rows:
                    rows[u].update(values)
                else:
                    bound = {"b_" + f: v for f, v in values.items()}
                    updates.setdefault(kind, []).append({"b_uuid": u, **bound})
            elif kind == RECIPE:
                recipes[rec["hash"]] = rec
            else:
                msg = f"unknown record kind {kind!r}"
                raise ValueError(msg)
        existing: set[uuid.UUID] = set()
        if rows:
            existing = set(
                conn.scalars(select(INSPECTIONS.c.uuid).where(INSPECTIONS.c.uuid.in_(rows)))
            )
        new = [u for u in rows if u not in existing]
        if new:
            conn.execute(insert(INSPECTIONS), [rows[u] for u in new])
            defects = [d for u in new for d in defect_rows(records[u], u)]
            if defects:
                conn.execute(insert(DEFECTS), defects)
        for kind, params in updates.items():
            conn.execute(_UPDATES[kind], params)
        if recipes:
            self._write_recipes(conn, recipes)
        replayed = sum(1 for u in new if u in earlier)
        this_run = sum(1 for u in rows if u not in earlier)
        return this_run, replayed

    def _write_recipes(self, conn: Connection, recipes: dict[str, dict[str, Any]]) -> None:
        found = dict(
            conn.execute(
                select(RECIPES.c.content_hash, RECIPES.c.content).where(
                    RECIPES.c.content_hash.in_(recipes)
                )
            ).all()
        )
        new = [
            {
                "name": r["name"],
                "content_hash": h,
                "content": r["content"],
                "first_seen_at": utc(r["ts"]),
                "last_seen_at": utc(r["ts"]),
            }
            for h, r in recipes.items()
            if h not in found
        ]
        if new:
            conn.execute(insert(RECIPES), new)
        seen = [{"b_hash": h, "b_at": utc(r["ts"])} for h, r in recipes.items() if h in found]
        if seen:
            conn.execute(_RECIPE_SEEN, seen)
        content = [
            {"b_hash": h, "b_content": r["content"]}
            for h, r in recipes.items()
            if h in found and r["content"] and not found[h]
        ]
        if content:
            conn.execute(_RECIPE_CONTENT, content)

    def _reject(self, entry: Entry, err: Exception) -> None:
        reason = str(getattr(err, "orig", None) or err).splitlines()[0]
        log.error("storage: record refused (%s); set aside in %s", reason, self.rejected_path)
        try:
            line = encode({**entry.record, "rejected": reason})
        except (TypeError, ValueError):
            line = encode({"t": "unencodable", "repr": repr(entry.record), "rejected": reason})
        try:
            with self.rejected_path.open("ab") as f:
                f.write(line)
        except OSError as write_err:
            log.error(  # noqa: TRY400 (expected: a full or read-only disk)
                "storage: cannot set the record aside in %s (%s)", self.rejected_path, write_err
            )
        self.health.count("rejected")
        self.health.raise_alarm(
            "rejected",
            f"{self.health.snapshot().rejected} records refused by the database, set aside in "
            f"{self.rejected_path}",
        )


def read_rejected(path: Path) -> list[dict[str, Any]]:
    """The records set aside in ``rejected.jsonl`` (for an engineer's repair script)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
