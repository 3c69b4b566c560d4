"""Where and how eagerly the publishers' process runs: ``[plant] cpus`` and ``niceness``.

Linux keeps both per thread: ``os.nice`` and ``os.sched_setaffinity(0, ...)`` change only the
calling thread, and the host's publishers (paho's network loop, proton's reactor, asyncua's
event loop, one thread per outbox) are running by the time they are open. So :func:`place`
sets every thread of the process (``/proc/self/task``); threads started later inherit from
the thread that starts them, which is one of these.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from aoi.errors import AoiError

log = logging.getLogger(__name__)

_TASKS = Path("/proc/self/task")


class PlacementError(AoiError):
    """``[plant] cpus`` names CPUs this machine does not have or does not allow."""


def _threads() -> list[int]:
    try:
        return sorted(int(name) for name in os.listdir(_TASKS))
    except OSError:  # not Linux: the process as one
        return [0]


def check_cpus(cpus: Iterable[int]) -> frozenset[int]:
    """``cpus`` as a set, or :class:`PlacementError` naming the field, what it asked for and
    what the machine has."""
    wanted = frozenset(cpus)
    count = os.cpu_count() or 1
    missing = sorted(c for c in wanted if c >= count)
    if missing:
        msg = (
            f"station config [plant] cpus: CPU {', '.join(map(str, missing))} does not exist "
            f"on this machine (expected numbers 0-{count - 1}, found {sorted(wanted)})"
        )
        raise PlacementError(msg)
    if wanted and not hasattr(os, "sched_setaffinity"):
        msg = "station config [plant] cpus: this system cannot pin a process to CPUs (Linux only)"
        raise PlacementError(msg)
    return wanted


def place(wanted: frozenset[int], niceness: int) -> None:
    """Pin every thread of this process to ``wanted`` (as :func:`check_cpus` returned them;
    none: leave them) and lower each one's priority by ``niceness``; :class:`PlacementError`
    when the system refuses those CPUs."""
    for tid in _threads():
        if wanted:
            try:
                os.sched_setaffinity(tid, wanted)
            except ProcessLookupError:  # a thread that ended meanwhile
                continue
            except OSError as err:  # EINVAL: none of them allowed here (a cgroup's cpuset)
                msg = (
                    f"station config [plant] cpus: cannot run on CPUs {sorted(wanted)} ({err}); "
                    f"this process may use {sorted(os.sched_getaffinity(0))}"
                )
                raise PlacementError(msg) from err
        if niceness and hasattr(os, "setpriority"):
            try:
                now = os.getpriority(os.PRIO_PROCESS, tid)
                os.setpriority(os.PRIO_PROCESS, tid, min(now + niceness, 19))
            except ProcessLookupError:
                continue
            except OSError as err:  # not allowed: run at the station's priority
                log.info("plant host: priority of thread %s not lowered (%s)", tid, err)


def thread_placement(pid: int) -> list[tuple[int, int, frozenset[int]]]:
    """Each thread of process ``pid`` as (thread id, niceness, CPUs) (Linux; the tests read the
    host's placement with it)."""
    out = []
    for name in sorted(os.listdir(f"/proc/{pid}/task")):
        tid = int(name)
        try:
            out.append(
                (tid, os.getpriority(os.PRIO_PROCESS, tid), frozenset(os.sched_getaffinity(tid)))
            )
        except ProcessLookupError:
            continue
    return out
