"""The station as a systemd service: readiness, watchdog pings and status lines over sd_notify.

systemd's ``Type=notify`` unit (installer/aoi-station.service) hands the station a datagram
socket in ``$NOTIFY_SOCKET`` (a path, or an abstract name written with a leading ``@``) and, with
``WatchdogSec=``, the watchdog period in ``$WATCHDOG_USEC`` (for the process ``$WATCHDOG_PID``).
:class:`ServiceNotifier` speaks that protocol with the stdlib socket; without ``NOTIFY_SOCKET``
(a terminal, a test, the GUI on a desk) every call is a no-op.

:class:`StationService` is what :class:`aoi.app.station.Station` holds:

* ``READY=1`` once :meth:`Station.start` has started the runner: by then the recipe is loaded,
  the model warmed up (the rig is built warm) and the PLC link listening (its server is bound
  before the station opens the rig).
* ``WATCHDOG=1`` every ``WATCHDOG_USEC / 2`` from a thread of its own, but only while the
  station is alive (:func:`station_trouble` finds nothing): the runner's heartbeat (a board done,
  or a wait for a PLC trigger that came back, which an idle station does every 0.1 s) is recent,
  the runner is not in FAULT (a camera that is gone ends the cycle's thread), the PLC server's
  event loop answers, and the PLC link's lock can be taken. A hung grab, a dead cycle thread or a
  wedged PLC server therefore stop the pings, and systemd restarts the station. A station an
  operator stopped has nothing that can hang and keeps pinging.
* ``STATUS=<recipe>: N inspected, N NG, N ERROR`` (the shift's counts), at most once a second
  and only when it changed.
* ``STOPPING=1`` when the station starts to close; the pings end with it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING

from aoi.runner import RunState
from plc.server import RegisterServer

if TYPE_CHECKING:
    from aoi.app.station import Station

log = logging.getLogger(__name__)

#: How long the PLC server's event loop and the link's lock get to answer a liveness probe.
PROBE_TIMEOUT_S = 1.0


class ServiceNotifier:
    """Sends sd_notify datagrams to systemd; a no-op without ``NOTIFY_SOCKET``."""

    def __init__(self, address: str | None, watchdog_s: float | None = None) -> None:
        self.address = address
        #: The watchdog period systemd enforces (None: no watchdog asked for).
        self.watchdog_s = watchdog_s
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> ServiceNotifier:
        """The notifier systemd's environment describes (``WATCHDOG_PID`` must be this process)."""
        env = os.environ if env is None else env
        watchdog_s = None
        pid = env.get("WATCHDOG_PID")
        if env.get("WATCHDOG_USEC", "").isdigit() and (pid is None or pid == str(os.getpid())):
            watchdog_s = int(env["WATCHDOG_USEC"]) / 1e6 or None
        return cls(env.get("NOTIFY_SOCKET") or None, watchdog_s)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """One datagram of ``KEY=value`` lines; False (and a debug line) if it could not go."""
        if self.address is None:
            return False
        # An abstract socket name is written with '@' and sent with a leading NUL.
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        data = "\n".join(fields).encode()
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.sendto(data, target)
            except OSError as err:
                log.debug("sd_notify to %s failed: %s", self.address, err)
                return False
        return True

    def close(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


def status_line(station: Station) -> str:
    """``board-a-640: 1234 inspected, 3 NG, 0 ERROR`` (the shift's counts), or why not running."""
    loaded = station.active_recipe
    if loaded is None:
        return f"no recipe running: {station.rig_error}"
    c = station.counters.snapshot()
    return f"{loaded.name}: {c.inspected} inspected, {c.ng} NG, {c.error} ERROR"


#: The longest recipe change (rig build and warm-up, a first TensorRT engine build included)
#: the watchdog waits for before it calls the cycle hung.
RECIPE_LOAD_LIMIT_S = 600.0


def station_trouble(station: Station, stall_s: float) -> str | None:
    """Why the station is not alive (the watchdog must not be fed), or None when it is."""
    runner = station.runner
    if runner is not None:
        if runner.state is RunState.FAULT:
            return f"the cycle stopped: {runner.fault}"
        now = time.monotonic()
        idle_s = now - runner.heartbeat
        loading = station.loading_since
        # A recipe change the PLC asked for: building and warming up a rig takes its time.
        building = loading is not None and now - loading < RECIPE_LOAD_LIMIT_S
        if runner.state is not RunState.STOPPED and idle_s > stall_s and not building:
            return f"no cycle progress for {idle_s:.1f} s (a hung grab or inspection)"
    if station.plc is not None:
        link = station.plc.link
        if isinstance(link.peer, RegisterServer) and not link.peer.responsive(PROBE_TIMEOUT_S):
            return "the PLC server's event loop does not answer"
        # Takes the link's lock: a link thread wedged while holding it blocks this probe, and
        # with it every later ping (which is what a wedged link must cause).
        link.health()
    return None


class StationService:
    """sd_notify for one station: READY at start, watchdog pings while alive, STATUS, STOPPING."""

    def __init__(
        self,
        station: Station,
        notifier: ServiceNotifier | None = None,
        *,
        status_every_s: float = 1.0,
        trouble: Callable[[Station, float], str | None] = station_trouble,
    ) -> None:
        self.station = station
        self.notifier = notifier or ServiceNotifier.from_environment()
        self.status_every_s = status_every_s
        self._trouble = trouble
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._status = ""

    def started(self) -> None:
        """The runner started: READY=1 (once) and the watchdog thread."""
        if not self.notifier.enabled or self._thread is not None:
            return
        self._status = status_line(self.station)
        self.notifier.send("READY=1", f"STATUS={self._status}")
        self._thread = threading.Thread(target=self._watch, name="aoi-sd-notify", daemon=True)
        self._thread.start()

    def stopping(self) -> None:
        """The station starts to close: STOPPING=1, and no more pings."""
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * PROBE_TIMEOUT_S + self.status_every_s)
            self.notifier.send("STOPPING=1", f"STATUS=stopping; {status_line(self.station)}")
        self.notifier.close()

    def __enter__(self) -> StationService:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stopping()

    def _watch(self) -> None:
        ping_s = self.notifier.watchdog_s / 2 if self.notifier.watchdog_s else None
        # A board may take a whole grab timeout before it counts: allow that much and a second.
        grab_s = self.station.config.camera.fetch_timeout_s
        stall_s = max(ping_s or 0.0, grab_s + 1.0)
        tick = min(self.status_every_s, ping_s or self.status_every_s)
        next_ping = next_status = time.monotonic()
        said = ""
        while not self._done.wait(tick):
            now = time.monotonic()
            if now >= next_status:
                status = status_line(self.station)
                if status != self._status:
                    self._status, next_status = status, now + self.status_every_s
                    self.notifier.send(f"STATUS={status}")
            if ping_s is None or now < next_ping:
                continue
            next_ping = now + ping_s
            trouble = self._trouble(self.station, stall_s)
            if trouble is None:
                self.notifier.send("WATCHDOG=1")
            elif not said:  # once per spell of trouble, not every period
                log.error("watchdog pings withheld, systemd will restart the station: %s", trouble)
            said = trouble or ""
