"""When a lost camera is tried again: a backoff that doubles from a first delay to a cap.

Traps it answers (genicam/harvesters#371, #202, #246): a GenTL producer rarely tells that a
device went away, and an acquirer of a removed device fails in ways that differ per producer;
a station that retried at once on every part would hammer the producer, one that waited forever
would never come back. The source tries again at these times, and between them answers each grab
at once with :class:`aoi.errors.CameraLost`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from genicam import gentl

#: First wait before reopening a lost camera, and the most it grows to (doubling).
RECONNECT_FIRST_S = 0.5
RECONNECT_MAX_S = 10.0

#: What harvesters raises at a call on an acquirer whose device is gone: IndexError from
#: ``try_fetch`` once the acquirer is destroyed (no stream monitors left), AttributeError from
#: its internals set to None (``remote_device``), and the GenTL errors a producer gives for a
#: handle that is closed or a device that no longer answers.
LOST_ERRORS: tuple[type[Exception], ...] = (
    IndexError,
    AttributeError,
    gentl.InvalidHandleException,
    gentl.NotInitializedException,
    gentl.ClosedException,
    gentl.AccessDeniedException,
    gentl.IoException,
)


@dataclass
class Backoff:
    """The schedule of reopen attempts for one loss; ``clock`` is injectable for tests."""

    first_s: float = RECONNECT_FIRST_S
    max_s: float = RECONNECT_MAX_S
    clock: Callable[[], float] = time.monotonic
    #: The wait before the next attempt (0: the camera is not lost).
    delay_s: float = 0.0
    #: Failed reopen attempts since the camera was lost.
    attempts: int = 0
    _due: float = field(default=0.0, repr=False)

    @property
    def lost(self) -> bool:
        return self.delay_s > 0

    def lose(self) -> None:
        """The camera just went away: the first attempt is ``first_s`` from now."""
        self.attempts = 0
        self.delay_s = self.first_s
        self._due = self.clock() + self.delay_s

    def wait_s(self) -> float:
        """Seconds until the next attempt is due (0: due now)."""
        return max(0.0, self._due - self.clock())

    def failed(self) -> None:
        """An attempt failed: wait twice as long (up to ``max_s``) before the next."""
        self.attempts += 1
        self.delay_s = min(self.delay_s * 2, self.max_s)
        self._due = self.clock() + self.delay_s

    def recovered(self) -> None:
        self.delay_s = 0.0
        self.attempts = 0
