"""The plant outbox: publishes the station's journal to a broker, losing nothing, repeating nothing.

A publisher (MQTT, IPC-CFX, OPC UA: aoi/app/plant/) never sees the cycle. Its :class:`Outbox`
thread reads the journal the cycle already writes, from the publisher's own acknowledged
position, builds one event per inspection (once its ``line`` and ``cycle`` records are in) and
per recipe record, and hands those that are ready, in journal order and as one batch, to the
publisher's :class:`Sink`, which returns only once the broker acknowledged them. The position is
then saved (once a batch) in ``outbox-<name>.json`` beside the journal's ``checkpoint.json``;
the journal prunes no segment past it (:func:`aoi.storage.journal.outbox_floors`), so a broker
down for longer than a segment's life loses nothing, and a restart resumes where the broker last
acknowledged.

Each event's message id is made from the inspection id (``<station>/inspection/<id>``), so a
consumer can recognise the retransmissions (at most the batch in flight) a crash between the
broker's acknowledgement and the saved position can cause. Review decisions (kind ``review``)
are not journaled: they are read from the database's ``reviews`` table by id
(:class:`aoi.storage.review_feed.ReviewFeed`), the acknowledged review id saved beside the
journal position; a review goes out once the inspection it is about has (so a consumer never
sees a decision on a board it does not know yet). A broker that is down is an alarm
(``on_alarm``) and a back-off (0.2 s doubling to ``backoff_max_s``); the sink's connect must
fail fast.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Protocol

from aoi.storage.db import DB_ERRORS
from aoi.storage.journal import Journal
from aoi.storage.journal_read import JournalReader, Position
from aoi.storage.outbox_events import (
    OutboxEvent,
    Pending,
    PublishError,
    inspection_event,
    recipe_event,
    review_event,
)
from aoi.storage.records import CYCLE, INSPECTION, LINE, RECIPE
from aoi.storage.review_feed import ReviewFeed

log = logging.getLogger(__name__)

#: Events held in memory at most (read ahead of what the broker acknowledged).
MAX_PENDING = 1000
#: Reviews read from the database at once.
REVIEW_BATCH = 100
#: Events handed to a sink's ``send_many`` at once (the position is saved once a batch).
SEND_BATCH = 32


class Sink(Protocol):
    """A publisher's connection to its broker.

    A sink may also have ``send_many(events)``: send them together and return once the broker
    acknowledged all; on a failure raise :class:`PublishError` whose ``done`` counts the
    leading events it did acknowledge (CFX sends a batch with one wait for the dispositions).
    """

    name: str

    def connect(self) -> None:
        """Connect within a few seconds or raise :class:`PublishError`."""

    def send(self, event: OutboxEvent) -> None:
        """Return once the broker acknowledged ``event``; raise :class:`PublishError` if not."""

    def close(self) -> None:
        """Drop the connection (idempotent)."""


class Outbox:
    """One publisher's thread: journal in, acknowledged messages out; a context manager."""

    def __init__(
        self,
        journal: Journal | JournalReader,
        sink: Sink,
        *,
        station_id: str,
        wait_for_line: bool = True,
        linger_s: float = 5.0,
        poll_s: float = 0.05,
        backoff_max_s: float = 5.0,
        on_alarm: Callable[[str | None], None] | None = None,
        reviews: ReviewFeed | None = None,
        review_poll_s: float = 0.5,
    ) -> None:
        self.journal = journal
        self.sink = sink
        self.station_id = station_id
        #: Without a PLC no ``line`` record comes: an inspection waits for its cycle time only.
        self.wait_for_line = wait_for_line
        #: How long an inspection waits for records that may never come (a crash, a lost link).
        self.linger_s = linger_s
        self.poll_s = poll_s
        self.backoff_max_s = backoff_max_s
        self.on_alarm = on_alarm
        self.path = journal.folder / f"outbox-{sink.name}.json"
        #: Review decisions, published after the journal's events (None: none are published).
        self.reviews = reviews
        self.review_poll_s = review_poll_s
        #: The last review acknowledged; -1: not known yet (the newest one at the first poll).
        self.review_sent = -1
        self._next_review_poll = 0.0
        self._last_inspection_id = -1
        #: The newest review id known to hold nothing more for this station.
        self._reviews_seen = -1
        self.position, self.sent = self._load()
        if self.review_sent < 0 and self.reviews is not None:
            try:  # a new publisher: reviews recorded from now on (else: at the first poll)
                self.review_sent = self.reviews.last_id()
                self._save(self.position, self.sent)
            except (*DB_ERRORS, OSError) as err:
                log.warning("outbox %s: reviews not read yet (%s)", sink.name, err)
        self._read_pos = self.position
        self._pending: dict[str, Pending] = {}  # journal order (dicts keep insertion order)
        self._count = 0
        self.published = 0
        self.connected = False
        self.last_error = ""
        self._stop = threading.Event()
        #: Set: the thread neither reads nor sends (``aoi.app.plant.bench``'s "off" blocks).
        self.paused = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the acknowledged position -----------------------------------------------------------

    def _load(self) -> tuple[Position, Position]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            position, sent = (raw["segment"], raw["offset"]), tuple(raw["sent"])
            review = raw.get("review")
        except FileNotFoundError:
            # A new publisher starts at the journal's end: it publishes from now on.
            start = self.journal.position
            self.review_sent = -1
            self._save(start, start)
            return start, start
        except (OSError, ValueError, KeyError, TypeError) as err:
            msg = f"{self.path} is unreadable ({err}); delete it to publish from the journal's end"
            raise PublishError(msg) from err
        # A position saved before reviews were published: reviews from now on.
        self.review_sent = int(review) if review is not None else -1
        return position, sent  # type: ignore[return-value]

    def _save(self, position: Position, sent: Position) -> None:
        tmp = self.path.with_suffix(".tmp")
        state = {
            "segment": position[0],
            "offset": position[1],
            "sent": list(sent),
            "review": self.review_sent,
        }
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, self.path)

    # -- life cycle ---------------------------------------------------------------------------

    def __enter__(self) -> Outbox:
        self._thread = threading.Thread(
            target=self._run, name=f"aoi-outbox-{self.sink.name}", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None
        self.sink.close()

    @property
    def backlog(self) -> int:
        """Events read from the journal and not yet acknowledged by the broker."""
        return len(self._pending)

    def skip_to_end(self) -> None:
        """Publish nothing journaled so far (call while ``paused``): aoi.app.plant.bench's "off"
        blocks are left out, so its "on" blocks carry the steady load, not a backlog too."""
        self._pending.clear()
        self._read_pos = self.position = self.sent = self.journal.position
        self._save(self.position, self.sent)

    @property
    def caught_up(self) -> bool:
        """Whether everything journaled so far was read and acknowledged."""
        return not self._pending and self._read_pos >= self.journal.position

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            if self.paused.is_set():
                self._stop.wait(self.poll_s)
                continue
            try:
                if not self.connected:
                    self.sink.connect()
                    self.last_error = ""
                    self._alarm(None)
                    self.connected = True
                    log.info("outbox %s: connected", self.sink.name)
                self._read()
                busy = self._drain()
                busy = self._publish_reviews() or busy
                side = getattr(self.sink, "side", None)
                if side is not None:  # what the sink queued itself (a fault, for CFX)
                    side()
                backoff = 0.2
                if not busy:
                    self._stop.wait(self.poll_s)
            except PublishError as err:
                if not self.last_error:
                    log.warning("outbox %s: %s (retrying with back-off)", self.sink.name, err)
                self.last_error = str(err)
                # The alarm before the flag: whoever sees ``connected`` False sees the alarm too.
                self._alarm(str(err))
                self.connected = False
                # A sink that resumes its session itself (MQTT QoS 2) keeps it.
                getattr(self.sink, "reset", self.sink.close)()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)

    def _alarm(self, text: str | None) -> None:
        if self.on_alarm is not None:
            self.on_alarm(text)

    def _read(self) -> None:
        end = self.journal.position
        if len(self._pending) >= MAX_PENDING or self._read_pos >= end:
            return  # full, or nothing new: no directory listing, no file opened (every poll_s)
        got = self.journal.read(self._read_pos, MAX_PENDING - len(self._pending))
        now = time.monotonic()
        for e in got.entries:
            rec, kind = e.record, e.record.get("t")
            if e.end <= self.sent:
                continue  # acknowledged before a restart: never sent twice
            if kind == INSPECTION:
                key = rec["uuid"]
                self._pending[key] = Pending(kind, rec, e.prev, e.end, now, key)
            elif kind == RECIPE:
                self._count += 1
                key = f"recipe-{self._count}"
                self._pending[key] = Pending(kind, rec, e.prev, e.end, now, key)
            elif kind in (LINE, CYCLE) and (p := self._pending.get(rec.get("uuid", ""))):
                setattr(p, "line" if kind == LINE else "cycle", rec)
        self._read_pos = got.position

    def _ready(self, p: Pending, now: float) -> bool:
        if p.kind != INSPECTION:
            return True
        complete = p.cycle is not None and (p.line is not None or not self.wait_for_line)
        return complete or now - p.seen_at >= self.linger_s

    def _drain(self) -> bool:
        """Send the events at the head that are ready, in order, a batch at a time (the
        position is saved once a batch); True if any was sent."""
        sent_any = False
        now = time.monotonic()
        send_many = getattr(self.sink, "send_many", None)
        while self._pending and not self._stop.is_set():
            batch: list[Pending] = []
            for p in self._pending.values():
                if len(batch) == SEND_BATCH or not self._ready(p, now):
                    break
                batch.append(p)
            if not batch:
                break
            events = [
                (inspection_event if p.kind == INSPECTION else recipe_event)(self.station_id, p)
                for p in batch
            ]
            done = 0
            try:
                if send_many is not None and len(events) > 1:
                    send_many(events)
                    done = len(events)
                else:
                    for event in events:
                        self.sink.send(event)
                        done += 1
            except PublishError as err:
                self._acknowledge(batch[: max(done, err.done)])
                raise
            self._acknowledge(batch)
            sent_any = True
        if not self._pending and self.position < self._read_pos:
            self.position = self._read_pos  # only records that make no event were read
            self._save_quietly()
        return sent_any

    def _acknowledge(self, batch: list[Pending]) -> None:
        """The broker has ``batch`` (the head of the pending events): save where, then forget
        it. In that order, because ``caught_up`` (read from other threads: ``stats``) reads
        the pending events: it must not say so before the position is on disk."""
        if not batch:
            return
        for p in batch:
            if p.kind == INSPECTION:
                self._last_inspection_id = max(self._last_inspection_id, p.record["inspection_id"])
            self.published += 1
            self.sent = p.end
        keys = {p.key for p in batch}
        head = next((q for k, q in self._pending.items() if k not in keys), None)
        self.position = head.prev if head is not None else self._read_pos
        self._save_quietly()
        for key in keys:
            del self._pending[key]

    def _save_quietly(self) -> None:
        try:
            self._save(self.position, self.sent)
        except OSError as err:
            log.warning("outbox %s: position not saved (%s)", self.sink.name, err)

    def _publish_reviews(self) -> bool:
        """Send the reviews recorded since the last one acknowledged; True if any was sent.

        The database is asked at most every ``review_poll_s``. A review waits while the
        inspection it is about may not be published yet: until everything journaled is, or
        an inspection as recent as it was (the station's inspection ids only grow).
        """
        now = time.monotonic()
        if self.reviews is None or now < self._next_review_poll:
            return False
        self._next_review_poll = now + self.review_poll_s
        caught_up = self.caught_up
        pending = {p.record["uuid"] for p in self._pending.values() if p.kind == INSPECTION}
        sent_any = False
        try:
            newest = self.reviews.last_id()  # one cheap query while nobody reviews
            if self.review_sent < 0:  # a new publisher: reviews recorded from now on
                self.review_sent = newest
                self._save(self.position, self.sent)
            if newest <= max(self.review_sent, self._reviews_seen):
                return False
            reviews = self.reviews.after(self.review_sent, REVIEW_BATCH)
            if not reviews:  # newer reviews, of other stations' boards (a fleet's database)
                self._reviews_seen = newest
        except (*DB_ERRORS, OSError) as err:  # the database is away: at the next poll again
            log.warning("outbox %s: reviews not read (%s)", self.sink.name, err)
            return False
        try:
            for review in reviews:
                published = review["inspection_id"] <= self._last_inspection_id
                if review["inspection_uuid"] in pending or not (caught_up or published):
                    break
                self.sink.send(review_event(self.station_id, review))
                self.review_sent = review["review_id"]
                self.published += 1
                sent_any = True
        finally:
            if sent_any:  # saved once for the reviews sent, a broker failing midway too
                self._save_quietly()
                self._next_review_poll = 0.0  # more may be waiting
        return sent_any
