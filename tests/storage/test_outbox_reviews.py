"""Review decisions through the plant outbox (aoi/storage/review_feed.py, aoi/storage/outbox.py).

The in-memory broker of test_outbox.py; the journal, writer and database are the station's own.
"""

from __future__ import annotations

from sqlalchemy import select
from storage_helpers import wait_for
from test_outbox import MemoryBroker, _inspect, _storage

from aoi.storage.outbox import Outbox
from aoi.storage.queries import record_review
from aoi.storage.review_feed import ReviewFeed
from aoi.storage.tables import Defect, Inspection
from aoi.types import Verdict


def _defects(storage, inspection_id: int) -> list[int]:
    query = (
        select(Defect.id)
        .join(Inspection, Defect.inspection_uuid == Inspection.uuid)
        .where(Inspection.inspection_id == inspection_id)
        .order_by(Defect.id)
    )
    with storage.db.session() as s:
        return list(s.scalars(query))


def test_a_review_goes_out_after_its_inspection_even_after_an_outage(tmp_path, make_result):
    broker = MemoryBroker()  # down
    with _storage(tmp_path) as storage:
        feed = ReviewFeed(storage.db, "s1")
        box = Outbox(
            storage.journal,
            broker,
            station_id="s1",
            poll_s=0.01,
            backoff_max_s=0.05,
            reviews=feed,
            review_poll_s=0.01,
        )
        with box:
            (board,) = _inspect(storage, make_result, 1)
            wait_for(lambda: storage.health.snapshot().committed == 1, what="commit")
            first, second = _defects(storage, board)
            record_review(storage.db, second, "alice", "DefectRejected", "dust")
            record_review(storage.db, first, "alice", "DefectConfirmed")
            broker.up.set()
            wait_for(lambda: sum(e.kind == "review" for e in broker.all) == 2, what="reviews")
        assert box.review_sent == max(r["review_id"] for r in feed.after(0, 10))
    kinds = [e.kind for e in broker.all]
    assert kinds == ["recipe", "inspection", "review", "review"]
    reviews = [e.payload for e in broker.all if e.kind == "review"]
    assert [(r["defect_id"], r["decision"]) for r in reviews] == [
        (second, "DefectRejected"),
        (first, "DefectConfirmed"),
    ]
    assert [r["defect_index"] for r in reviews] == [1, 0]  # its place among the board's defects
    assert reviews[0]["inspection_id"] == board and reviews[0]["comment"] == "dust"


def test_a_review_waits_for_its_inspection_still_waiting_for_its_line_record(tmp_path, make_result):
    broker = MemoryBroker()
    broker.up.set()
    with _storage(tmp_path) as storage:
        box = Outbox(
            storage.journal,
            broker,
            station_id="s1",
            poll_s=0.01,
            linger_s=1.0,
            reviews=ReviewFeed(storage.db, "s1"),
            review_poll_s=0.01,
        )
        with box:
            r = make_result(Verdict.NG, 2)
            storage.publish(r)
            storage.finish(r)  # no line record: the inspection waits for it (linger_s)
            wait_for(lambda: storage.health.snapshot().committed == 1, what="commit")
            record_review(
                storage.db, _defects(storage, r.inspection_id)[0], "bob", "DefectRejected"
            )
            wait_for(lambda: [e.kind for e in broker.all][-1:] == ["review"], what="the review")
    assert [e.kind for e in broker.all] == ["recipe", "inspection", "review"]


def test_only_this_stations_reviews_are_read(tmp_path, make_result):
    with _storage(tmp_path) as storage:
        (board,) = _inspect(storage, make_result, 1)
        wait_for(lambda: storage.health.snapshot().committed == 1, what="commit")
        record_review(storage.db, _defects(storage, board)[0], "alice", "DefectRejected")
        assert [r["inspection_id"] for r in ReviewFeed(storage.db, "s1").after(0, 10)] == [board]
        assert ReviewFeed(storage.db, "s2").after(0, 10) == []
        assert ReviewFeed(storage.db, "s1").last_id() == 1
