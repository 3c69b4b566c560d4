"""A Modbus TCP client over a remote register set, for the end of the link that connects.

pymodbus's synchronous client, one request at a time behind a lock (the link thread polls, the
cycle thread writes its result). pymodbus's own reconnect logic has changed between releases, so
it is not used: a failed request drops the socket and raises :class:`PlcLinkError`, and the
caller reconnects with its own backoff, knowing the link's state at every moment.

pymodbus logs a dropped connection as ERROR lines followed by the last raw frames in hex; the
link says what happened in one line of its own, so pymodbus's loggers are set to CRITICAL here,
unless someone already gave them a level (to debug a PLC's framing, say).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from types import TracebackType

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ExceptionResponse

from plc.errors import PlcLinkError
from plc.registers import Span

log = logging.getLogger(__name__)

#: pymodbus's loggers: the package's, and the one its ``Log`` helper writes to.
PYMODBUS_LOGGERS = ("pymodbus", "pymodbus.logging")


def quiet_pymodbus() -> None:
    """Silence pymodbus below CRITICAL, leaving alone a logger whose level was set on purpose."""
    for name in PYMODBUS_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.CRITICAL)


EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    6: "device busy",
}


class RegisterClient:
    """Reads and writes holding registers of the device at ``host:port``."""

    def __init__(
        self,
        host: str,
        port: int,
        unit_id: int = 1,
        timeout_s: float = 0.5,
        name: str = "plc-client",
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.timeout_s = timeout_s
        self._client: ModbusTcpClient | None = None
        self._lock = threading.Lock()
        quiet_pymodbus()

    def __enter__(self) -> RegisterClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect()

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    def has_partner(self) -> bool:
        return self._client is not None

    def connect(self) -> None:
        with self._lock:
            if self._client is not None:
                return
            client = ModbusTcpClient(
                self.host, port=self.port, timeout=self.timeout_s, retries=0, name=self.name
            )
            if not client.connect():
                client.close()
                msg = f"{self.name}: no Modbus TCP device answers at {self.host}:{self.port}"
                raise PlcLinkError(msg)
            self._client = client

    def disconnect(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def read(self, span: Span) -> list[int]:
        with self._lock:
            client = self._require()
            try:
                response = client.read_holding_registers(
                    span.start, count=span.count, device_id=self.unit_id
                )
            except (ModbusException, OSError) as err:
                self._drop()
                msg = f"{self.name}: reading registers {span} from {self.host}:{self.port}: {err}"
                raise PlcLinkError(msg) from err
            self._check(response, f"reading registers {span}")
            registers = list(response.registers)[: span.count]
        if len(registers) != span.count:
            msg = f"{self.name}: asked for {span.count} registers at {span}, got {len(registers)}"
            raise PlcLinkError(msg)
        return registers

    def write(self, start: int, words: Sequence[int]) -> None:
        span = Span(start, len(words))
        with self._lock:
            client = self._require()
            try:
                response = client.write_registers(start, list(words), device_id=self.unit_id)
            except (ModbusException, OSError) as err:
                self._drop()
                msg = f"{self.name}: writing registers {span} to {self.host}:{self.port}: {err}"
                raise PlcLinkError(msg) from err
            self._check(response, f"writing registers {span}")

    def wait(self, timeout_s: float) -> None:
        threading.Event().wait(timeout_s)

    def _require(self) -> ModbusTcpClient:
        if self._client is None:
            msg = f"{self.name}: not connected to {self.host}:{self.port}"
            raise PlcLinkError(msg)
        return self._client

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _check(self, response: object, what: str) -> None:
        if isinstance(response, ExceptionResponse) or getattr(response, "isError", bool)():
            code = getattr(response, "exception_code", 0)
            name = EXCEPTION_NAMES.get(code, f"code {code}")
            msg = (
                f"{self.name}: the device at {self.host}:{self.port} refused {what}: "
                f"exception {code:02d} ({name}); does its register map match the station's?"
            )
            raise PlcLinkError(msg)
