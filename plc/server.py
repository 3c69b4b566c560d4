"""A Modbus TCP server over one register image, for the end of the link that serves.

Our own small asyncio server (framing and PDUs in :mod:`plc.mbap`), on its own event loop in a
background thread that starts in ``__enter__`` and is stopped and joined in ``__exit__``.
pymodbus's server answered function codes we do not serve, dropped all but the first ADU of a
TCP segment, and stopped answering a connection, without closing it, after one frame with a bad
protocol id; pymodbus stays the client (plc/client.py).

The image is plain memory behind a lock: the local side (station or soft PLC) reads and writes it
directly, every request is served from it under the lock, so a client never sees a block
half-written. Who may connect, how many at once and for how long idle is :class:`ServerAccess`;
of the admitted connections, the first to write controls the registers until it closes, and the
writes of the others are answered exception 01 (plc/README.md, "Who may drive the station").
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from plc import mbap
from plc.access import ServerAccess, is_loopback
from plc.errors import PlcLinkError
from plc.mbap import HOLDING_REGISTER_FUNCTIONS, FrameError, RequestError
from plc.registers import Span

__all__ = ["HOLDING_REGISTER_FUNCTIONS", "RegisterServer", "ServerAccess", "WriteObserver"]

log = logging.getLogger(__name__)

WriteObserver = Callable[[int, list[int], bool], None]


@dataclass
class _Connection:
    """One admitted client connection."""

    id: int
    who: str
    warned: set[tuple[int, int]] = field(default_factory=set)


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
        *,
        access: ServerAccess | None = None,
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
        self.access = access or ServerAccess()
        self.rejected_requests = 0
        self.refused_connections = 0
        self.clients = 0
        self._image = [0] * span.count
        self._lock = threading.Lock()
        self._written = threading.Event()
        self._observers: list[WriteObserver] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._serving = False
        self._started = threading.Event()
        self._start_error: OSError | None = None
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._controller: int | None = None  # id of the connection that may write
        self._refused_from: set[str] = set()

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
        if not self.access.allowed_clients and not is_loopback(self.host):
            log.warning(
                "%s: listening on %s with no [plc] allowed_clients: any host that reaches port "
                "%d can drive the station; list the PLC's address",
                self.name,
                self.host,
                self.port,
            )
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
        self._stopping = asyncio.Event()
        try:
            server = await asyncio.start_server(self._connection, self.host, self.port)
        except OSError as err:
            self._start_error = err
            self._started.set()
            return
        async with server:
            self.port = server.sockets[0].getsockname()[1]
            self._serving = True
            self._started.set()
            log.info(
                "%s: serving registers %s on %s:%d", self.name, self.span, self.host, self.port
            )
            await self._stopping.wait()
            self._serving = False
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _stop(self) -> None:
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is not None and stopping is not None and thread is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop has just ended on its own
                loop.call_soon_threadsafe(stopping.set)
        if thread is not None:
            thread.join(timeout=5.0)
            if thread.is_alive():
                log.error("%s: Modbus server did not shut down within 5 s", self.name)

    def responsive(self, timeout_s: float) -> bool:
        """Whether the server's event loop runs a callback within ``timeout_s`` (a liveness probe:
        a wedged loop answers no client, though its thread is alive)."""
        loop, answered = self._loop, threading.Event()
        if loop is None or not self._serving:
            return False
        try:
            loop.call_soon_threadsafe(answered.set)
        except RuntimeError:  # the loop has ended
            return False
        return answered.wait(timeout_s)

    # -- connections -------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        who = f"{peer[0]}:{peer[1]}"
        refusal = self._admission(str(peer[0]))
        if refusal:
            self.refused_connections += 1
            # A refused device usually retries every few hundred ms: one warning per address.
            level = logging.DEBUG if peer[0] in self._refused_from else logging.WARNING
            self._refused_from.add(str(peer[0]))
            log.log(level, "%s: refused a connection from %s: %s", self.name, who, refusal)
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None  # a stream callback runs as a task
        self._tasks.add(task)
        conn = _Connection(next(self._ids), who)
        self.clients += 1
        log.info("%s: Modbus client %s connected (%d open)", self.name, who, self.clients)
        requests, why = 0, "closed by the client"
        try:
            while True:
                header = mbap.parse_header(await self._read(reader, mbap.HEADER_SIZE))
                pdu = await self._read(reader, header.pdu_size)
                writer.write(mbap.frame(header, self._answer(conn, pdu)))
                await writer.drain()
                requests += 1
        except TimeoutError:
            why = f"idle for {self.access.idle_timeout_s:g} s, closed"
        except FrameError as err:
            why = f"broken frame ({err}), closed"
        except asyncio.IncompleteReadError as err:
            why = "closed by the client" + (" in mid-frame" if err.partial else "")
        except ConnectionError as err:
            why = f"connection lost ({err})"
        except asyncio.CancelledError:
            why = "server stopping"
        finally:
            self._tasks.discard(task)
            self.clients -= 1
            if self._controller == conn.id:
                self._controller = None
            writer.close()
            level = logging.INFO if why.startswith(("closed by", "server")) else logging.WARNING
            log.log(
                level,
                "%s: Modbus client %s left after %d request(s): %s",
                self.name,
                who,
                requests,
                why,
            )

    def _admission(self, address: str) -> str:
        """Why a connection from ``address`` is refused now; empty if admitted."""
        if not self._serving:
            return "the server is stopping"
        if not self.access.admits(address):
            return "not in [plc] allowed_clients"
        if self.clients >= self.access.max_connections:
            return f"already {self.clients} connection(s), [plc] max_connections"
        if self.clients and not self.access.allow_readers:
            return "another client is connected and [plc] allow_readers is false"
        return ""

    async def _read(self, reader: asyncio.StreamReader, size: int) -> bytes:
        async with asyncio.timeout(self.access.idle_timeout_s):
            return await reader.readexactly(size)

    def _answer(self, conn: _Connection, pdu: bytes) -> bytes:
        function = pdu[0]
        try:
            may_write = self._controller in (None, conn.id)
            request = mbap.decode(pdu, self.span, self.client_writable, may_write=may_write)
        except RequestError as err:
            self.rejected_requests += 1
            # A PLC program repeats a bad request every scan: one warning per kind and connection.
            kind = (function, err.code)
            level = logging.DEBUG if kind in conn.warned else logging.WARNING
            conn.warned.add(kind)
            log.log(
                level,
                "%s: answered %s with exception %02d: %s",
                self.name,
                conn.who,
                err.code,
                err,
            )
            return mbap.exception_pdu(function, err.code)
        if request.write_words:
            if self._controller is None:
                self._controller = conn.id
                log.info("%s: Modbus client %s controls the registers", self.name, conn.who)
            self._store(request.write_start, list(request.write_words), remote=True)
            self._written.set()
        words: list[int] = []
        if request.read is not None:
            words = self.read(request.read)
        return mbap.response(request, pdu, words)

    # -- the local side ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._serving

    @property
    def has_partner(self) -> bool:
        return self.clients > 0

    def connect(self) -> None:
        if not self._serving:
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
