"""The image archive: lossless images and overlay previews written off the cycle with their
paths in the database, the OK sample, retention by age and by free space, and a full queue.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import select
from storage_helpers import ResultFactory, StorageFactory

from aoi.storage.archive import Archive, DiskUsage, overlay
from aoi.storage.db import Database
from aoi.storage.health import StorageHealth
from aoi.storage.tables import Inspection
from aoi.types import Defect, Defects, Frame, Registration, Verdict


def _frame(i: int = 0, dtype: type = np.uint8) -> Frame:
    rng = np.random.default_rng(i)
    top = 255 if dtype is np.uint8 else 4095
    return Frame(rng.integers(0, top, (96, 128), dtype=dtype), i, 0, "test", f"f{i}")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_ng_boards_are_archived_losslessly_with_a_preview_and_paths_in_the_database(
    sqlite_url: str, make_storage: StorageFactory, make_result: ResultFactory, dtype: type
) -> None:
    frame = _frame(1, dtype)
    ng = make_result(Verdict.NG, 2, frame=frame)
    ok = make_result(Verdict.OK, frame=_frame(2))
    with make_storage(sqlite_url, archive_images=True) as storage:
        stored_ng = storage.publish(ng)
        stored_ok = storage.publish(ok)
        assert storage.stored(ng.inspection_id) == stored_ng
    assert storage.status().archive_written == 1
    assert stored_ng.image_path is not None
    image = Path(stored_ng.image_path)
    assert image.suffix == ".png" and "_NG_" in image.name
    assert np.array_equal(cv2.imread(str(image), cv2.IMREAD_UNCHANGED), frame.image)
    preview = cv2.imread(str(image.with_name(image.name.replace(".png", ".overlay.jpg"))))
    assert preview.shape == (96, 128, 3)
    assert stored_ok.image_path is None  # OK boards are not archived by default
    with Database(sqlite_url) as db, db.session() as s:
        paths = {i.verdict: (i.image_path, i.preview_path) for i in s.scalars(select(Inspection))}
    assert paths["NG"][0] == str(image)
    assert paths["NG"][1].endswith(".overlay.jpg")
    assert paths["OK"] == (None, None)
    assert not list(image.parent.glob("*.part"))


def test_a_sample_of_ok_boards_is_archived(tmp_path: Path, make_result: ResultFactory) -> None:
    archive = Archive(tmp_path, StorageHealth(), ok_sample_rate=0.25)
    planned = [
        archive.plan(make_result(Verdict.OK, frame=_frame()), _uuid(i)) is not None
        for i in range(12)
    ]
    assert planned == [False, False, False, True] * 3
    no_frame = make_result(Verdict.NG)
    assert archive.plan(no_frame, _uuid(99)) is None  # nothing to archive without a frame


def _uuid(i: int) -> object:
    import uuid

    return uuid.UUID(int=i)


def _day(root: Path, day: datetime, files: int) -> Path:
    folder = root / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}"
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(files):
        (folder / f"{day:%Y%m%d}T0000{k:02d}Z_NG_x.png").write_bytes(b"x")
    return folder


def test_retention_deletes_day_folders_older_than_the_retention(tmp_path: Path) -> None:
    now = datetime(2025, 6, 30, 12, tzinfo=UTC)
    april = _day(tmp_path, now - timedelta(days=70), 3)
    old = _day(tmp_path, now - timedelta(days=31), 1)
    edge = _day(tmp_path, now - timedelta(days=30), 2)
    today = _day(tmp_path, now, 2)
    health = StorageHealth()
    archive = Archive(tmp_path, health, retention_days=30, min_free_gb=0.0, clock=now.timestamp)
    assert archive.prune() == 4
    assert not old.exists() and edge.exists() and today.exists()
    assert not april.parent.exists()  # the emptied month folder went too
    assert health.snapshot().archive_pruned == 4


def test_oldest_images_go_until_the_minimum_free_space_is_back(tmp_path: Path) -> None:
    now = datetime(2025, 6, 30, 12, tzinfo=UTC)
    _day(tmp_path, now - timedelta(days=2), 30)
    newest = _day(tmp_path, now - timedelta(days=1), 30)

    def usage(_path: Path) -> DiskUsage:
        # Each file stands for 1 GB; 50 files leave the disk with 5 GB free.
        used = sum(1 for p in tmp_path.rglob("*.png"))
        return DiskUsage(60 * 10**9, used * 10**9, (55 - used) * 10**9)

    archive = Archive(
        tmp_path, StorageHealth(), min_free_gb=15.0, disk_usage=usage, clock=now.timestamp
    )
    removed = archive.prune_for_space(chunk=5)
    assert removed == 20
    assert len(list(newest.iterdir())) == 30  # the older day went first
    assert usage(tmp_path).free >= 15 * 10**9


def test_an_image_is_skipped_with_an_alarm_when_no_space_can_be_freed(
    sqlite_url: str, make_storage: StorageFactory, make_result: ResultFactory
) -> None:
    storage = make_storage(sqlite_url, archive_images=True, min_free_gb=1.0)
    with storage:
        assert storage.archive is not None
        storage.archive.disk_usage = lambda _p: DiskUsage(10**10, 10**10, 10**8)
        r = make_result(Verdict.NG, frame=_frame())
        stored = storage.publish(r)
    status = storage.status()
    assert (status.archive_written, status.archive_failed) == (0, 1)
    assert any("below min_free_gb" in a for a in status.alarms)
    assert stored.image_path is not None and not Path(stored.image_path).exists()
    assert status.committed == 1  # the inspection itself is recorded all the same


def test_a_full_archive_queue_drops_the_image_not_the_cycle(
    tmp_path: Path, make_result: ResultFactory
) -> None:
    health = StorageHealth()
    archive = Archive(tmp_path, health, queue_size=1)  # not started: nothing drains it
    r = make_result(Verdict.NG, frame=_frame())
    paths = archive.plan(r, _uuid(1))
    assert paths is not None
    assert archive.submit(r, paths) is True
    # Nothing drains the queue: a submit that waited for room would wait forever, and one that
    # waited 60 ms or more each time would add up past the 60 s hang guard over 1000 boards (a
    # guard against waiting, not a speed limit: 1000 drops take milliseconds). Every further
    # board is dropped, counted, and the cycle goes on.
    returns: list[bool] = []
    cycle = threading.Thread(
        target=lambda: returns.extend(archive.submit(r, paths) for _ in range(1000)), name="cycle"
    )
    cycle.start()
    cycle.join(60)
    assert not cycle.is_alive(), "submit() waits for the archive"
    assert returns == [False] * 1000
    assert health.snapshot().archive_dropped == 1000
    assert any("images behind" in a for a in health.snapshot().alarms)


def test_overlay_draws_boxes_where_the_registration_puts_them() -> None:
    image = np.zeros((100, 100), np.uint8)
    d = Defect(5, "spurious_copper", (20, 20, 30, 30), 100, 0.9)
    shifted = Registration(np.array([[1, 0, 40], [0, 1, 10]], np.float32), 40, 10, 0, 1, 0)
    plain = overlay(image, Defects.from_items([d]), Defects.empty(), None)
    moved = overlay(image, Defects.from_items([d]), Defects.empty(), shifted)
    red = (40, 40, 230)
    assert tuple(plain[18, 25]) == red  # top edge of the box (2 px padding), template place
    assert tuple(moved[28, 65]) == red  # the same edge, 40 px right and 10 px down
    assert tuple(moved[18, 25]) != red
