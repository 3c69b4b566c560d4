"""Station-side faults the PLC must see: the defect log's journal cannot be written.

No verdict leaves the station that is not durably journaled. A part whose record the journal
refused is answered ERROR by the pipeline (``aoi.errors.RecordNotDurable``); this watcher holds
the PLC link NOT READY with STORAGE_UNAVAILABLE while the journal's disk stays full, and lets
READY rise by itself once there is room again.
"""

from __future__ import annotations

import threading
from types import TracebackType

from aoi.storage import Storage
from plc.link import StationLink
from plc.protocol import ErrorCode


class JournalWatch:
    """Polls :meth:`Storage.journal_ready` on a thread of its own and drives the link's fault."""

    def __init__(self, storage: Storage, link: StationLink, period_s: float = 0.2) -> None:
        self.storage, self.link, self.period_s = storage, link, period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aoi-journal-watch", daemon=True)

    def __enter__(self) -> JournalWatch:
        # A refusal drops READY at once, on the cycle's thread; the thread only sees recovery.
        self.storage.on_journal_refused = self._refused
        self.check()  # a disk full at start holds NOT READY before the first part
        self._thread.start()
        return self

    def _refused(self, _reason: str) -> None:
        self.link.set_station_fault(ErrorCode.STORAGE_UNAVAILABLE, self._message())

    def _message(self) -> str:
        return (
            f"the journal {self.storage.journal_dir} cannot be written (disk full or failing): "
            "free space on its disk and the station takes parts again"
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.storage.on_journal_refused = None
        self._stop.set()
        self._thread.join()

    def check(self) -> bool:
        """Hold or release the fault once; True when the journal can take the next part."""
        ready = self.storage.journal_ready()
        self.link.set_station_fault(
            ErrorCode.STORAGE_UNAVAILABLE, None if ready else self._message()
        )
        return ready

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.check()
