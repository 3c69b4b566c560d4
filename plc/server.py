"""A Modbus TCP server over one register image, for the end of the link that serves.

pymodbus's server is asyncio; it runs on its own event loop in a background thread that starts in
``__enter__`` and is stopped and joined in ``__exit__``. The image is plain memory behind a lock:
the local side (station or soft PLC) reads and writes it directly, and every Modbus request is
served from it through pymodbus's per-request ``action`` hook, so a client never sees a block
half-written. Holding registers only: other function codes get exception 01 (illegal function),
addresses outside the map and writes outside the client's own block get exception 02 (illegal
data address).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from types import TracebackType

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from plc.errors import PlcLinkError
from plc.registers import Span

log = logging.getLogger(__name__)

#: Read holding registers, write single, write multiple, read/write multiple.
HOLDING_REGISTER_FUNCTIONS = frozenset({3, 6, 16, 23})

WriteObserver = Callable[[int, list[int], bool], None]


class RegisterServer:
    """Serves ``span`` over Modbus TCP; the client may write only ``client_writable``."""

    def __init__(
        self,
        span: Span,
        client_writable: Span,
        host: str = "127.0.0.1",
        port: int = 502,
        name: str = "plc-server",
        start_timeout_s: float = 5.0,
    ) -> None:
        if not (span.start <= client_writable.start and client_writable.stop <= span.stop):
            msg = f"client-writable registers {client_writable} must lie inside {span}"
            raise ValueError(msg)
        self.name = name
        self.span = span
        self.client_writable = client_writable
        self.host = host
        self.port = port
        self.start_timeout_s = start_timeout_s
        self.rejected_requests = 0
        self.clients = 0
        self._image = [0] * span.count
        self._lock = threading.Lock()
        self._written = threading.Event()
        self._observers: list[WriteObserver] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusTcpServer | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    # -- lifetime ---------------------------------------------------------------------------

    def __enter__(self) -> RegisterServer:
        self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
        self._thread.start()
        if not self._started.wait(self.start_timeout_s):
            self._stop()
            msg = f"{self.name}: Modbus server on {self.host}:{self.port} did not start in time"
            raise PlcLinkError(msg)
        if self._start_error is not None:
            self._thread.join()
            msg = (
                f"{self.name}: cannot listen on {self.host}:{self.port} "
                f"({self._start_error}); is the port in use?"
            )
            raise PlcLinkError(msg) from self._start_error
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _serve(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        device = SimDevice(
            id=0,  # any unit id: Modbus TCP devices mostly ignore it
            simdata=[SimData(self.span.start, count=self.span.count, datatype=DataType.REGISTERS)],
            action=self._action,
        )
        server = ModbusTcpServer(
            device, address=(self.host, self.port), trace_connect=self._trace_connect
        )
        try:
            await server.serve_forever(background=True)
        except (RuntimeError, OSError) as err:
            self._start_error = err
            self._started.set()
            return
        transport = server.transport
        sockets = getattr(transport, "sockets", None)
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self._server = server
        self._started.set()
        log.info("%s: serving registers %s on %s:%d", self.name, self.span, self.host, self.port)
        await server.serving

    def _stop(self) -> None:
        loop, server, thread = self._loop, self._server, self._thread
        if loop is not None and server is not None and thread is not None and thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(server.shutdown(), loop)
            try:
                future.result(timeout=5.0)
            except FutureTimeout:
                log.exception("%s: Modbus server did not shut down within 5 s", self.name)
        if thread is not None:
            thread.join(timeout=5.0)
        self._server = None

    def _trace_connect(self, connected: bool) -> None:
        self.clients = max(0, self.clients + (1 if connected else -1))
        log.info("%s: a Modbus client %s", self.name, "connected" if connected else "left")

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if function_code not in HOLDING_REGISTER_FUNCTIONS:
            self.rejected_requests += 1
            log.warning(
                "%s: refused function code %d: holding registers only", self.name, function_code
            )
            return ExcCodes.ILLEGAL_FUNCTION
        at = address - self.span.start
        if values is None:
            with self._lock:
                registers[address - start_address : address - start_address + count] = self._image[
                    at : at + count
                ]
            return None
        w = self.client_writable
        if not (w.start <= address and address + count <= w.stop):
            self.rejected_requests += 1
            log.warning(
                "%s: refused a write of %d register(s) at %d: the client may write only %s",
                self.name,
                count,
                address,
                w,
            )
            return ExcCodes.ILLEGAL_ADDRESS
        self._store(address, [int(v) for v in values], remote=True)
        self._written.set()
        return None

    # -- the local side ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._server is not None

    @property
    def has_partner(self) -> bool:
        return self.clients > 0

    def connect(self) -> None:
        if self._server is None:
            msg = f"{self.name}: the server is not running; open it with `with`"
            raise PlcLinkError(msg)

    def disconnect(self) -> None:
        """Nothing to drop: a server keeps serving."""

    def read(self, span: Span) -> list[int]:
        self._check(span.start, span.count)
        at = span.start - self.span.start
        with self._lock:
            return self._image[at : at + span.count]

    def write(self, start: int, words: Sequence[int]) -> None:
        self._check(start, len(words))
        self._store(start, list(words), remote=False)

    def wait(self, timeout_s: float) -> None:
        if self._written.wait(timeout_s):
            self._written.clear()

    def add_write_observer(self, observer: WriteObserver) -> None:
        """Call ``observer(start, words, remote)`` on every write (commissioning traces, tests)."""
        self._observers.append(observer)

    def _store(self, start: int, words: list[int], *, remote: bool) -> None:
        at = start - self.span.start
        with self._lock:
            self._image[at : at + len(words)] = words
            for observer in self._observers:
                observer(start, words, remote)

    def _check(self, start: int, count: int) -> None:
        if not (self.span.start <= start and start + count <= self.span.stop):
            msg = f"{self.name}: registers {start}..{start + count - 1} lie outside {self.span}"
            raise ValueError(msg)
