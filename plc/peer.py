"""What both ends of the link talk through: a set of registers, local or across Modbus TCP.

The station and the soft PLC each read the other's block and write their own. Whether those
registers are local memory served to a Modbus client (:class:`plc.server.RegisterServer`) or a
remote device reached as a Modbus client (:class:`plc.client.RegisterClient`) is the role; the
handshake code above cannot tell them apart.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from plc.registers import Span


class LinkState(enum.Enum):
    """The link as the station sees it; shown in the GUI and logged on every change."""

    CONNECTING = "connecting"  # client: first attempt under way
    LISTENING = "listening"  # server: serving, no PLC connected
    UP = "up"  # a PLC is connected
    DOWN = "down"  # client: lost or refused, retrying with backoff
    CLOSED = "closed"


class RegisterPeer(Protocol):
    """Registers to read and write, wherever they are."""

    name: str

    @property
    def connected(self) -> bool:
        """The registers can be read and written now."""
        ...

    @property
    def has_partner(self) -> bool:
        """The other end is there: a client is connected to this server, or this client is."""
        ...

    def connect(self) -> None:
        """Open the connection (raises :class:`plc.errors.PlcLinkError`); a server is open."""
        ...

    def disconnect(self) -> None:
        """Drop the connection so that the next :meth:`connect` starts afresh."""
        ...

    def read(self, span: Span) -> list[int]: ...

    def write(self, start: int, words: Sequence[int]) -> None: ...

    def wait(self, timeout_s: float) -> None:
        """Sleep up to ``timeout_s``; a server wakes early when its client writes."""
        ...


@dataclass
class Backoff:
    """Reconnect delays that double from ``min_s`` to ``max_s`` and reset on success."""

    min_s: float = 0.1
    max_s: float = 2.0
    next_delay_s: float = 0.0
    attempts: int = 0

    def failed(self) -> float:
        """The delay before the next attempt."""
        self.attempts += 1
        self.next_delay_s = min(self.max_s, max(self.min_s, self.next_delay_s * 2))
        return self.next_delay_s

    def succeeded(self) -> None:
        self.attempts = 0
        self.next_delay_s = 0.0
