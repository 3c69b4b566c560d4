"""Modbus TCP framing (MBAP) and the holding-register PDUs the station serves, without I/O.

An ADU is a 7-byte MBAP header (transaction id, protocol id 0, length, unit id) and a PDU whose
first byte is the function code. The length field counts the unit id and the PDU, so it lies in
2..254 (a PDU is at most 253 bytes). A header outside that, or with a protocol id other than 0,
means the stream has lost its framing: the server closes the connection rather than guess where
the next frame starts.

Only function codes 3, 6, 16 and 23 are served. Checks follow the order of the Modbus
application protocol's state diagrams: function code (exception 01), then quantity and PDU
length (03), then addresses (02).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from plc.registers import Span

HEADER = struct.Struct(">HHHB")
HEADER_SIZE = HEADER.size  # 7
#: The MBAP length field counts the unit id and the PDU: 1 + 1..253.
MIN_LENGTH, MAX_LENGTH = 2, 254

READ_HOLDING, WRITE_SINGLE, WRITE_MULTIPLE, READ_WRITE_MULTIPLE = 3, 6, 16, 23
#: Read holding registers, write single, write multiple, read/write multiple.
HOLDING_REGISTER_FUNCTIONS = frozenset(
    {READ_HOLDING, WRITE_SINGLE, WRITE_MULTIPLE, READ_WRITE_MULTIPLE}
)
WRITE_FUNCTIONS = frozenset({WRITE_SINGLE, WRITE_MULTIPLE, READ_WRITE_MULTIPLE})

MAX_READ = 125  # FC3 and the read half of FC23
MAX_WRITE = 123  # FC16
MAX_RW_WRITE = 121  # the write half of FC23


class ExceptionCode(IntEnum):
    """Modbus exception codes the server answers with."""

    ILLEGAL_FUNCTION = 1
    ILLEGAL_DATA_ADDRESS = 2
    ILLEGAL_DATA_VALUE = 3


class FrameError(ValueError):
    """An MBAP header that cannot start a Modbus TCP frame: the stream has lost its framing."""


class RequestError(ValueError):
    """A request answered with a Modbus exception (``code``), with the reason for the log."""

    def __init__(self, code: ExceptionCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True)
class Header:
    """One MBAP header; ``pdu_size`` is how many bytes follow it."""

    transaction: int
    unit: int
    pdu_size: int


@dataclass(frozen=True)
class Request:
    """A checked holding-register request: what to write (first), then what to read."""

    function: int
    read: Span | None = None
    write_start: int = 0
    write_words: tuple[int, ...] = ()


def parse_header(raw: bytes) -> Header:
    """The header in ``raw`` (7 bytes); :class:`FrameError` if it cannot start a frame."""
    transaction, protocol, length, unit = HEADER.unpack(raw)
    if protocol != 0:
        msg = f"protocol id {protocol}, not 0 (Modbus)"
        raise FrameError(msg)
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        msg = f"length field {length}, outside {MIN_LENGTH}..{MAX_LENGTH}"
        raise FrameError(msg)
    return Header(transaction, unit, length - 1)


def frame(header: Header, pdu: bytes) -> bytes:
    """The ADU answering ``header``'s request with ``pdu`` (same transaction and unit id)."""
    return HEADER.pack(header.transaction, 0, len(pdu) + 1, header.unit) + pdu


def exception_pdu(function: int, code: ExceptionCode) -> bytes:
    """An exception response: the request's function code with bit 7 set, then the code."""
    return bytes(((function & 0x7F) | 0x80, int(code)))


def decode(pdu: bytes, span: Span, writable: Span, *, may_write: bool = True) -> Request:
    """The request in ``pdu``, checked against the served ``span`` and the client's ``writable``.

    A connection that does not control the registers (``may_write`` false) may only read: its
    writes are answered 01, as the function is not available to it in this state. Raises
    :class:`RequestError` with the exception code to answer.
    """
    function = pdu[0]
    body = pdu[1:]
    if function not in HOLDING_REGISTER_FUNCTIONS:
        raise RequestError(ExceptionCode.ILLEGAL_FUNCTION, f"function code {function}")
    if function in WRITE_FUNCTIONS and not may_write:
        msg = f"a write (function code {function}) from a read-only connection"
        raise RequestError(ExceptionCode.ILLEGAL_FUNCTION, msg)
    if function == READ_HOLDING:
        start, count = _fields(body, 4, function, ">HH")
        _quantity(count, MAX_READ, "read")
        return Request(function, read=_inside(Span(start, count), span, "read"))
    if function == WRITE_SINGLE:
        start, value = _fields(body, 4, function, ">HH")
        _inside(Span(start, 1), writable, "write")
        return Request(function, write_start=start, write_words=(value,))
    if function == WRITE_MULTIPLE:
        start, count, size = _fields(body[:5], 5, function, ">HHB")
        _quantity(count, MAX_WRITE, "write")
        words = _words(body[5:], count, size)
        _inside(Span(start, count), writable, "write")
        return Request(function, write_start=start, write_words=words)
    read_start, read_count, start, count, size = _fields(body[:9], 9, function, ">HHHHB")
    _quantity(read_count, MAX_READ, "read")
    _quantity(count, MAX_RW_WRITE, "write")
    words = _words(body[9:], count, size)
    read = _inside(Span(read_start, read_count), span, "read")
    _inside(Span(start, count), writable, "write")
    return Request(function, read=read, write_start=start, write_words=words)


def response(request: Request, pdu: bytes, words: list[int]) -> bytes:
    """The normal response to ``request`` (its ``pdu``), ``words`` being the registers read."""
    if request.function in (READ_HOLDING, READ_WRITE_MULTIPLE):
        return bytes((request.function, 2 * len(words))) + struct.pack(f">{len(words)}H", *words)
    return pdu[:5]  # FC6: the echo of the request; FC16: function, start, quantity


def _fields(body: bytes, size: int, function: int, fmt: str) -> tuple[int, ...]:
    if len(body) != size:
        msg = f"function code {function} with {len(body)} byte(s) of fields, not {size}"
        raise RequestError(ExceptionCode.ILLEGAL_DATA_VALUE, msg)
    return struct.unpack(fmt, body)


def _quantity(count: int, most: int, what: str) -> None:
    if not 1 <= count <= most:
        msg = f"{what} quantity {count}, outside 1..{most}"
        raise RequestError(ExceptionCode.ILLEGAL_DATA_VALUE, msg)


def _words(data: bytes, count: int, size: int) -> tuple[int, ...]:
    if size != 2 * count or len(data) != size:
        msg = f"byte count {size} with {len(data)} data byte(s) for {count} register(s)"
        raise RequestError(ExceptionCode.ILLEGAL_DATA_VALUE, msg)
    return struct.unpack(f">{count}H", data)


def _inside(asked: Span, allowed: Span, what: str) -> Span:
    if not (allowed.start <= asked.start and asked.stop <= allowed.stop):
        msg = f"{what} of registers {asked}, outside {allowed}"
        raise RequestError(ExceptionCode.ILLEGAL_DATA_ADDRESS, msg)
    return asked
