"""The image archive: NG boards (and a sample of OK ones) on disk, written off the cycle.

Where an image goes is decided when the verdict is published, so that the journal record (and
the database row) carries its path from the start and replay needs nothing from the archive. A
worker thread then writes, from a bounded queue, the frame as a lossless PNG and a JPEG preview
with the defects drawn on it, each through a temporary file and a rename: a path in the database
names either a complete file or none (queue full, disk full, or deleted by retention; the
health counters and alarm say which). Layout: ``<archive>/YYYY/MM/DD/<UTC time>_<verdict>_<uuid>``
(``.png`` and ``.overlay.jpg``), dates in UTC.

Retention: day folders older than ``retention_days`` are deleted (at start and hourly), and
before each write the oldest images go until the disk has ``min_free_gb`` free; if it still has
not, the image is not written and the ``archive`` alarm is raised.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from aoi.storage.health import StorageHealth
from aoi.types import Defects, InspectionResult, Registration, Verdict

log = logging.getLogger(__name__)

_DEFECT_BGR = (40, 40, 230)
_REVIEW_BGR = (0, 170, 255)
#: Lossless and about 2x faster than OpenCV's default PNG settings (SUB filter, RLE, level 1):
#: ~4 ms for a 640x640 board on one core, for ~10% more bytes.
_PNG_FAST = [
    cv2.IMWRITE_PNG_COMPRESSION,
    1,
    cv2.IMWRITE_PNG_FILTER,
    cv2.IMWRITE_PNG_FILTER_SUB,
    cv2.IMWRITE_PNG_STRATEGY,
    cv2.IMWRITE_PNG_STRATEGY_RLE,
]
#: Niceness of the archive thread (Linux): encoding images yields the CPU to the cycle. Only
#: this thread: it holds the GIL only briefly, unlike the writer, which must not be preempted
#: while holding it.
ARCHIVE_NICE = 10
#: Alarms about single images stay up this long after the last failure.
_ALARM_HOLD_S = 60.0


class DiskUsage(NamedTuple):
    total: int
    used: int
    free: int


@dataclass(frozen=True)
class ArchivePaths:
    image: Path
    preview: Path


@dataclass(frozen=True)
class _Job:
    image: np.ndarray
    defects: Defects
    review_defects: Defects
    registration: Registration | None
    paths: ArchivePaths


def _bgr8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint16:
        scale = 255.0 / max(1, int(image.max()))
        image = cv2.convertScaleAbs(image, alpha=scale)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image.copy()


def overlay(
    image: np.ndarray,
    defects: Defects,
    review_defects: Defects,
    registration: Registration | None,
    max_side_px: int = 2048,
) -> np.ndarray:
    """The frame in 8-bit colour with each defect's box drawn where it lies on the frame.

    Boxes are in template coordinates; the registration maps them onto the frame as taken.
    Called defects are red, review-band ones amber. Frames larger than ``max_side_px`` shrink.
    """
    bgr = _bgr8(image)
    m = np.eye(2, 3) if registration is None else registration.transform.astype(np.float64)
    side = max(bgr.shape[:2])
    thick = max(1, round(side / 640))
    pad = 2 * thick
    for colour, found in ((_REVIEW_BGR, review_defects), (_DEFECT_BGR, defects)):
        for d in found:
            x0, y0, x1, y1 = d.bbox_xyxy_px
            box = np.array(
                [
                    [x0 - pad, y0 - pad],
                    [x1 + pad, y0 - pad],
                    [x1 + pad, y1 + pad],
                    [x0 - pad, y1 + pad],
                ],
                dtype=np.float64,
            )
            pts = np.round(box @ m[:, :2].T + m[:, 2]).astype(np.int32)
            cv2.polylines(bgr, [pts], isClosed=True, color=colour, thickness=thick)
            x, y = int(pts[:, 0].min()), int(pts[:, 1].min())
            cv2.putText(
                bgr,
                f"{d.class_name} {d.score:.2f}",
                (x, max(12 * thick, y - 3)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.4 * thick,
                colour,
                thick,
                cv2.LINE_AA,
            )
    if side > max_side_px:
        f = max_side_px / side
        bgr = cv2.resize(bgr, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    return bgr


class Archive:
    """Decides which boards are archived and writes them on its own thread."""

    def __init__(
        self,
        folder: Path,
        health: StorageHealth,
        *,
        ok_sample_rate: float = 0.0,
        retention_days: int = 90,
        min_free_gb: float = 5.0,
        queue_size: int = 32,
        prune_interval_s: float = 3600.0,
        poll_s: float = 0.1,
        disk_usage: Callable[[Path], DiskUsage] = lambda p: DiskUsage(*shutil.disk_usage(p)),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = folder
        self._root = folder.as_posix()
        self.health = health
        self.ok_sample_rate = ok_sample_rate
        self.retention_days = retention_days
        self.min_free_gb = min_free_gb
        self.prune_interval_s = prune_interval_s
        self.disk_usage = disk_usage
        self.clock = clock
        self.queue: queue.Queue[_Job] = queue.Queue(queue_size)
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._ok_credit = 0.0
        self._thread: threading.Thread | None = None
        self._last_trouble = 0.0

    # -- the publishing side (critical path: cheap) -------------------------------------------

    def plan(self, result: InspectionResult, record_uuid: uuid.UUID) -> ArchivePaths | None:
        """Where this board's images will go, or None when it is not archived."""
        if result.frame is None:
            return None
        if result.verdict is Verdict.OK:
            self._ok_credit += self.ok_sample_rate
            if self._ok_credit < 1.0:
                return None
            self._ok_credit -= 1.0
        t = time.gmtime(result.timestamp_utc or self.clock())
        ymd = f"{t.tm_year:04d}{t.tm_mon:02d}{t.tm_mday:02d}"
        day = f"{self._root}/{ymd[:4]}/{ymd[4:6]}/{ymd[6:]}"
        stem = (
            f"{day}/{ymd}T{t.tm_hour:02d}{t.tm_min:02d}{t.tm_sec:02d}Z_"
            f"{result.verdict.name}_{record_uuid}"
        )
        return ArchivePaths(Path(f"{stem}.png"), Path(f"{stem}.overlay.jpg"))

    def submit(self, result: InspectionResult, paths: ArchivePaths) -> bool:
        """Queue the frame for writing without waiting; False (and counted) when full."""
        assert result.frame is not None
        job = _Job(
            result.frame.image, result.defects, result.review_defects, result.registration, paths
        )
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            self.health.count("archive_dropped")
            self._trouble(
                f"image archive is {self.queue.maxsize} images behind: {paths.image.name} "
                "not archived"
            )
            return False
        return True

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aoi-storage-archive", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        _lower_priority(ARCHIVE_NICE)
        next_prune = 0.0
        while True:
            if time.monotonic() >= next_prune:
                self.prune()
                next_prune = time.monotonic() + self.prune_interval_s
            # A nap rather than a blocking get: submit() on the cycle's thread wakes no one.
            stopping = self._stop.wait(self.poll_s)
            while True:
                try:
                    job = self.queue.get_nowait()
                except queue.Empty:
                    break
                self._write(job)
            self._expire_alarm()
            if stopping:
                return

    def _trouble(self, text: str) -> None:
        self._last_trouble = time.monotonic()
        self.health.raise_alarm("archive", text)

    def _expire_alarm(self) -> None:
        if self._last_trouble and time.monotonic() - self._last_trouble > _ALARM_HOLD_S:
            self._last_trouble = 0.0
            self.health.clear_alarm("archive")

    # -- writing ------------------------------------------------------------------------------

    def _free_gb(self) -> float | None:
        try:
            free = self.disk_usage(self.folder).free / 1e9
        except OSError:
            return None
        self.health.archive_free_gb = round(free, 3)
        return free

    def _write(self, job: _Job) -> None:
        free = self._free_gb()
        if free is not None and free < self.min_free_gb:
            self.prune_for_space()
            free = self._free_gb()
            if free is not None and free < self.min_free_gb:
                self.health.count("archive_failed")
                self._trouble(
                    f"image archive {self.folder}: {free:.2f} GB free, below min_free_gb "
                    f"{self.min_free_gb} with nothing left to delete; {job.paths.image.name} "
                    "not archived"
                )
                return
        try:
            png, jpg = _encode(job)
            job.paths.image.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(job.paths.image, png)
            _write_atomic(job.paths.preview, jpg)
        except (OSError, cv2.error) as err:
            self.health.count("archive_failed")
            log.warning("image archive: %s not written (%s)", job.paths.image, err)
            self._trouble(f"image archive {self.folder}: cannot write images ({err})")
            return
        self.health.count("archive_written")

    # -- retention ----------------------------------------------------------------------------

    def _day_folders(self) -> list[tuple[date, Path]]:
        days = []
        for path in self.folder.glob("[0-9][0-9][0-9][0-9]/[0-9][0-9]/[0-9][0-9]"):
            try:
                y, m, d = (int(p) for p in path.relative_to(self.folder).parts)
                days.append((date(y, m, d), path))
            except ValueError:
                continue
        return sorted(days)

    def prune(self) -> int:
        """Delete day folders older than the retention, then free space; returns files deleted."""
        cutoff = datetime.fromtimestamp(self.clock(), UTC).date() - timedelta(
            days=self.retention_days
        )
        removed = 0
        for day, path in self._day_folders():
            if day >= cutoff:
                break
            removed += sum(1 for p in path.iterdir() if p.is_file())
            shutil.rmtree(path, ignore_errors=True)
            _remove_empty_parents(path.parent, self.folder)
        if removed:
            log.info(
                "image archive: %d files older than %d days deleted", removed, self.retention_days
            )
            self.health.count("archive_pruned", removed)
        return removed + self.prune_for_space()

    def prune_for_space(self, chunk: int = 20) -> int:
        """Delete the oldest images until ``min_free_gb`` is free; returns files deleted."""
        removed = 0
        for _day, path in self._day_folders():
            files = sorted(p for p in path.iterdir() if p.is_file())
            for i in range(0, len(files), chunk):
                free = self._free_gb()
                if free is None or free >= self.min_free_gb:
                    break
                for p in files[i : i + chunk]:
                    try:
                        p.unlink()
                        removed += 1
                    except OSError as err:
                        log.warning("image archive: cannot delete %s (%s)", p, err)
            else:
                _remove_empty_parents(path, self.folder)
                continue
            break
        if removed:
            log.warning(
                "image archive: %d oldest files deleted to keep %.1f GB free",
                removed,
                self.min_free_gb,
            )
            self.health.count("archive_pruned", removed)
        return removed


def _encode(job: _Job) -> tuple[bytes, bytes]:
    """The lossless PNG (fast compression) and the overlay preview JPEG."""
    ok, png = cv2.imencode(".png", job.image, _PNG_FAST)
    preview = overlay(job.image, job.defects, job.review_defects, job.registration)
    ok_jpg, jpg = cv2.imencode(".jpg", preview, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not (ok and ok_jpg):
        msg = f"OpenCV could not encode {job.paths.image.name}"
        raise OSError(msg)
    return png.tobytes(), jpg.tobytes()


def _lower_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority where the OS has per-thread niceness (Linux)."""
    if sys.platform != "linux":
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError as err:
        log.debug("image archive: thread priority unchanged (%s)", err)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    try:
        with tmp.open("wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def _remove_empty_parents(path: Path, root: Path) -> None:
    while path != root and path.is_dir() and not any(path.iterdir()):
        path.rmdir()
        path = path.parent
