"""Hand-built Modbus TCP frames over raw sockets, for the server's fault tests."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager

from plc.access import ServerAccess
from plc.registers import Span
from plc.server import RegisterServer

#: A map like the station's: the PLC writes 0..23, the station 32..47.
WHOLE, PLC_BLOCK = Span(0, 48), Span(0, 24)
HANG_GUARD_S = 10.0  # only a guard against a hang, never a pass/fail threshold


def adu(
    tid: int, pdu: bytes, *, protocol: int = 0, unit: int = 1, length: int | None = None
) -> bytes:
    """One ADU; ``length`` overrides the MBAP length field (unit id + PDU)."""
    size = len(pdu) + 1 if length is None else length
    return struct.pack(">HHHB", tid, protocol, size, unit) + pdu


def fc3(start: int, count: int) -> bytes:
    return struct.pack(">BHH", 3, start, count)


def fc6(address: int, value: int) -> bytes:
    return struct.pack(">BHH", 6, address, value)


def fc16(
    start: int, words: list[int], *, count: int | None = None, size: int | None = None
) -> bytes:
    n = len(words) if count is None else count
    nbytes = 2 * len(words) if size is None else size
    return struct.pack(f">BHHB{len(words)}H", 16, start, n, nbytes, *words)


def fc23(
    read_start: int,
    read_count: int,
    start: int,
    words: list[int],
    *,
    count: int | None = None,
    size: int | None = None,
) -> bytes:
    n = len(words) if count is None else count
    nbytes = 2 * len(words) if size is None else size
    return struct.pack(
        f">BHHHHB{len(words)}H", 23, read_start, read_count, start, n, nbytes, *words
    )


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    sock.settimeout(HANG_GUARD_S)
    out = b""
    while len(out) < size:
        chunk = sock.recv(size - len(out))
        if not chunk:
            msg = f"connection closed after {len(out)} of {size} bytes"
            raise ConnectionError(msg)
        out += chunk
    return out


def recv_adu(sock: socket.socket) -> tuple[int, int, int, bytes]:
    """(transaction id, protocol id, unit id, PDU) of the next response."""
    tid, protocol, length, unit = struct.unpack(">HHHB", recv_exactly(sock, 7))
    return tid, protocol, unit, recv_exactly(sock, length - 1)


def is_closed(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` without sending anything more (waits, with a guard)."""
    sock.settimeout(HANG_GUARD_S)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def exchange(sock: socket.socket, pdu: bytes, tid: int = 7) -> bytes:
    """Send one request, return the PDU of its response (checking the echoed header)."""
    sock.sendall(adu(tid, pdu, unit=9))
    rtid, protocol, unit, reply = recv_adu(sock)
    assert (rtid, protocol, unit) == (tid, 0, 9)
    return reply


@contextmanager
def serving(
    access: ServerAccess | None = None, host: str = "127.0.0.1"
) -> Iterator[RegisterServer]:
    with RegisterServer(WHOLE, PLC_BLOCK, host, 0, "test-server", access=access) as server:
        yield server


@contextmanager
def client(server: RegisterServer) -> Iterator[socket.socket]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=HANG_GUARD_S) as sock:
        yield sock
