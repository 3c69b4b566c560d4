"""The station's Modbus TCP server against hand-built ADUs on raw sockets: function codes,
quantities, addresses and framing (several ADUs in one segment, broken headers)."""

from __future__ import annotations

import struct

import pytest
from raw_modbus_client import (
    adu,
    client,
    exchange,
    fc3,
    fc6,
    fc16,
    fc23,
    is_closed,
    recv_adu,
    serving,
)

pytestmark = [pytest.mark.fault, pytest.mark.integration]


def words_of(reply: bytes) -> list[int]:
    """The registers in a FC3/FC23 response (function, byte count, words)."""
    assert reply[1] == len(reply) - 2
    return list(struct.unpack(f">{reply[1] // 2}H", reply[2:]))


@pytest.mark.parametrize(
    ("function", "body"),
    [
        (1, b"\x00\x00\x00\x08"),  # read coils
        (2, b"\x00\x00\x00\x08"),  # read discrete inputs
        (4, b"\x00\x00\x00\x02"),  # read input registers
        (5, b"\x00\x00\xff\x00"),  # write single coil
        (7, b""),  # read exception status
        (8, b"\x00\x00\x12\x34"),  # diagnostics, echo
        (11, b""),  # comm event counter
        (12, b""),  # comm event log
        (15, b"\x00\x00\x00\x08\x01\xff"),  # write multiple coils
        (17, b""),  # report server id
        (20, b"\x07\x06\x00\x01\x00\x00\x00\x01"),  # read file record
        (21, b"\x09\x06\x00\x01\x00\x00\x00\x01\x12\x34"),  # write file record
        (22, b"\x00\x00\xff\xff\x00\x00"),  # mask write register
        (24, b"\x00\x00"),  # read FIFO queue
        (43, b"\x0e\x01\x00"),  # read device identification
        (99, b""),  # no such function
        (0x7F, b"\x00"),
    ],
)
def test_only_holding_register_functions_are_served(function: int, body: bytes) -> None:
    with serving() as server, client(server) as sock:
        server.write(0, [0x1111])
        assert exchange(sock, bytes([function]) + body) == bytes([function | 0x80, 1])
        assert server.read(server.span)[0] == 0x1111  # nothing was written
        assert server.rejected_requests == 1
        assert words_of(exchange(sock, fc3(0, 1))) == [0x1111]  # the connection still serves


def test_the_four_functions_read_and_write_the_image() -> None:
    with serving() as server, client(server) as sock:
        server.write(32, [0xBEEF, 2])  # the station's block
        assert exchange(sock, fc6(1, 0x1234)) == fc6(1, 0x1234)  # the echo
        assert exchange(sock, fc16(8, [0x4142, 0x4344, 0])) == struct.pack(">BHH", 16, 8, 3)
        assert words_of(exchange(sock, fc3(0, 2))) == [0, 0x1234]
        reply = exchange(sock, fc23(32, 2, 2, [0, 77]))
        assert words_of(reply) == [0xBEEF, 2]
        assert server.read(server.span)[:4] == [0, 0x1234, 0, 77]
        assert words_of(exchange(sock, fc3(8, 3))) == [0x4142, 0x4344, 0]
        # The most one request may carry.
        assert len(words_of(exchange(sock, fc3(0, 48)))) == 48
        assert exchange(sock, fc16(0, [5] * 24))[0] == 16


@pytest.mark.parametrize(
    ("pdu", "why"),
    [
        (fc3(0, 0), "FC3 quantity 0"),
        (fc3(0, 126), "FC3 quantity 126"),
        (fc3(0, 2)[:-1], "FC3 PDU one byte short"),
        (fc3(0, 2) + b"\x00", "FC3 PDU one byte long"),
        (fc6(1, 1)[:-1], "FC6 PDU one byte short"),
        (fc16(0, [], count=0, size=0), "FC16 quantity 0"),
        (fc16(0, [1], count=124, size=248), "FC16 quantity 124"),
        (fc16(0, [1, 2], size=2), "FC16 byte count for one register, two sent"),
        (fc16(0, [1, 2], count=3, size=6), "FC16 quantity 3, two registers sent"),
        (fc16(0, [1, 2]) + b"\x00\x00", "FC16 more data than the byte count"),
        (fc23(32, 0, 0, [1]), "FC23 read quantity 0"),
        (fc23(0, 126, 0, [1]), "FC23 read quantity 126"),
        (fc23(32, 1, 0, [], count=0, size=0), "FC23 write quantity 0"),
        (fc23(32, 1, 0, [1], count=122, size=244), "FC23 write quantity 122"),
        (fc23(32, 1, 0, [1, 2], size=3), "FC23 odd byte count"),
        (bytes([16]), "FC16 with no fields"),
    ],
)
def test_bad_quantities_and_lengths_get_exception_03(pdu: bytes, why: str) -> None:
    with serving() as server, client(server) as sock:
        assert exchange(sock, pdu) == bytes([pdu[0] | 0x80, 3]), why
        assert server.read(server.span) == [0] * 48, why


@pytest.mark.parametrize(
    ("pdu", "why"),
    [
        (fc3(40, 20), "read past the end of the map"),
        (fc3(0, 125), "the largest legal read quantity, past the map"),
        (fc16(0, [1] * 123), "the largest legal write quantity, past the PLC block"),
        (fc23(0, 1, 0, [1] * 121), "FC23's largest legal write quantity, past the PLC block"),
        (fc3(48, 1), "read just past the map"),
        (fc3(65535, 1), "read at the last Modbus address"),
        (fc6(32, 1), "write into the station's block"),
        (fc6(24, 1), "write into the gap after the PLC block"),
        (fc16(23, [1, 2]), "write straddling the PLC block's end"),
        (fc23(40, 10, 0, [1]), "FC23 read past the map"),
        (fc23(32, 1, 32, [1]), "FC23 write into the station's block"),
    ],
)
def test_addresses_outside_the_map_get_exception_02(pdu: bytes, why: str) -> None:
    with serving() as server, client(server) as sock:
        assert exchange(sock, pdu) == bytes([pdu[0] | 0x80, 2]), why
        assert server.read(server.span) == [0] * 48, why


def test_every_adu_in_one_segment_is_answered_in_order() -> None:
    with serving() as server, client(server) as sock:
        segment = b"".join(
            [
                adu(1, fc16(0, [10, 11, 12])),
                adu(2, fc3(0, 3)),
                adu(3, bytes([17])),  # refused, and the next one still answered
                adu(4, fc6(1, 99)),
                adu(5, fc3(0, 3), unit=0xFF),
            ]
        )
        sock.sendall(segment)
        replies = [recv_adu(sock) for _ in range(5)]
        assert [(tid, protocol) for tid, protocol, _, _ in replies] == [(i, 0) for i in range(1, 6)]
        assert replies[4][2] == 0xFF  # the unit id is echoed
        assert words_of(replies[1][3]) == [10, 11, 12]
        assert replies[2][3] == bytes([0x91, 1])
        assert words_of(replies[4][3]) == [10, 99, 12]


def test_an_adu_split_across_segments_is_answered() -> None:
    with serving() as server, client(server) as sock:
        whole = adu(1, fc3(0, 2)) + adu(2, fc3(0, 1))
        for part in (whole[:3], whole[3:9], whole[9:15], whole[15:]):
            sock.sendall(part)
        assert [recv_adu(sock)[0] for _ in range(2)] == [1, 2]


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (adu(1, fc3(0, 2), protocol=1), "protocol id 1"),
        (adu(1, fc3(0, 2), protocol=0xFFFF), "protocol id 0xFFFF"),
        (adu(1, b"", length=1), "length 1: no PDU"),
        (adu(1, b"", length=0), "length 0"),
        (adu(1, fc3(0, 2), length=255), "length 255: PDU over 253 bytes"),
        (adu(1, fc3(0, 2), length=0xFFFF), "length 65535"),
    ],
)
def test_a_broken_frame_closes_the_connection(frame: bytes, why: str) -> None:
    with serving() as server:
        with client(server) as sock:
            assert words_of(exchange(sock, fc3(0, 1))) == [0]
            sock.sendall(frame + adu(2, fc3(0, 1)))  # a good frame behind it is not answered
            assert is_closed(sock), why
        with client(server) as sock:  # the server itself serves on
            assert words_of(exchange(sock, fc3(0, 1))) == [0], why
