"""A raw-socket Modbus TCP device on 127.0.0.1 for fault tests: it can accept and drop every
connection at once (a PLC that refuses the station after the TCP handshake), or answer FC3 with
its registers and record every FC16 write, byte for byte as a PLC would see it."""

from __future__ import annotations

import socket
import struct
import threading
from types import TracebackType


class RawModbusDevice:
    """Serves on a free port until closed; ``drop`` makes it close each connection at once."""

    def __init__(self, size: int = 128, *, drop: bool = False) -> None:
        self.drop = drop
        self.registers = [0] * size
        self.accepted = 0
        self.writes: list[tuple[int, list[int]]] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="raw-modbus", daemon=True)

    def __enter__(self) -> RawModbusDevice:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with self._lock:
                self.accepted += 1
            with conn:
                if not self.drop:
                    self._talk(conn)

    def _talk(self, conn: socket.socket) -> None:
        conn.settimeout(0.05)
        buf = b""
        while not self._stop.is_set() and not self.drop:
            try:
                chunk = conn.recv(512)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while len(buf) >= 7:
                tid, _, length, unit = struct.unpack(">HHHB", buf[:7])
                if len(buf) < 6 + length:
                    break
                pdu, buf = buf[7 : 6 + length], buf[6 + length :]
                reply = self._answer(pdu)
                conn.sendall(struct.pack(">HHHB", tid, 0, len(reply) + 1, unit) + reply)

    def _answer(self, pdu: bytes) -> bytes:
        fc = pdu[0]
        if fc == 3:
            start, count = struct.unpack(">HH", pdu[1:5])
            words = self.registers[start : start + count]
            return struct.pack(f">BB{count}H", 3, 2 * count, *words)
        if fc == 16:
            start, count, _ = struct.unpack(">HHB", pdu[1:6])
            words = list(struct.unpack(f">{count}H", pdu[6 : 6 + 2 * count]))
            with self._lock:
                self.registers[start : start + count] = words
                self.writes.append((start, words))
            return struct.pack(">BHH", 16, start, count)
        return bytes([fc | 0x80, 1])
