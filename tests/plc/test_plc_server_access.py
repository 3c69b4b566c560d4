"""Who may drive the station as Modbus server: the allow-list, one controlling connection,
readers, the connection limit and the idle timeout, with raw sockets on 127.0.0.1."""

from __future__ import annotations

import ipaddress
import logging
import socket
import time

import pytest
from pydantic import ValidationError
from raw_modbus_client import (
    HANG_GUARD_S,
    client,
    exchange,
    fc3,
    fc6,
    fc16,
    fc23,
    is_closed,
    serving,
)

from aoi.config import PlcConfig
from plc.access import ServerAccess

pytestmark = [pytest.mark.fault, pytest.mark.integration]

OK_READ = bytes([3, 2, 0, 0])  # FC3 of one register holding 0


def refused_at_connect(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` without answering a request sent on it."""
    try:
        sock.sendall(b"\x00\x01\x00\x00\x00\x06\x01" + fc3(0, 1))
    except (BrokenPipeError, ConnectionResetError):
        return True
    return is_closed(sock)


def test_a_client_outside_the_allow_list_is_refused_at_connect() -> None:
    elsewhere = ServerAccess(allowed_clients=(ipaddress.ip_network("192.168.10.5"),))
    with serving(elsewhere) as server:
        with client(server) as sock:
            assert refused_at_connect(sock)
        assert server.refused_connections == 1
        assert server.read(server.span) == [0] * 48
    loopback = ServerAccess(allowed_clients=(ipaddress.ip_network("127.0.0.0/8"),))
    with serving(loopback) as server, client(server) as sock:
        assert exchange(sock, fc3(0, 1)) == OK_READ
        assert server.refused_connections == 0


def test_the_first_connection_to_write_controls_the_others_only_read() -> None:
    with serving() as server, client(server) as plc, client(server) as other:
        assert exchange(other, fc3(0, 1)) == OK_READ  # reading gives no control
        assert exchange(plc, fc6(0, 1)) == fc6(0, 1)  # the first write takes it
        for pdu in (fc6(0, 9), fc16(0, [9, 9]), fc23(0, 1, 0, [9])):
            assert exchange(other, pdu) == bytes([pdu[0] | 0x80, 1])
        assert exchange(other, fc3(0, 1)) == bytes([3, 2, 0, 1])  # it still reads
        assert server.read(server.span)[:2] == [1, 0]
        assert exchange(plc, fc16(0, [2, 3])) == bytes([16, 0, 0, 0, 2])
        plc.close()  # control passes on only when the controller leaves
        reply = b""
        for _ in range(int(HANG_GUARD_S / 0.01)):  # until the server has seen it leave
            reply = exchange(other, fc6(0, 5))
            if reply == fc6(0, 5):
                break
            time.sleep(0.01)
        assert reply == fc6(0, 5)
        assert server.read(server.span)[0] == 5


def test_without_readers_a_second_connection_is_refused_at_connect() -> None:
    with serving(ServerAccess(allow_readers=False)) as server, client(server) as plc:
        assert exchange(plc, fc3(0, 1)) == OK_READ
        with client(server) as other:
            assert refused_at_connect(other)
        assert exchange(plc, fc6(0, 4)) == fc6(0, 4)  # the first is untouched
        assert server.refused_connections == 1


def test_connections_beyond_the_limit_are_refused() -> None:
    with serving(ServerAccess(max_connections=2)) as server:
        with client(server) as first, client(server) as second:
            assert exchange(first, fc3(0, 1)) == OK_READ
            assert exchange(second, fc3(0, 1)) == OK_READ
            with client(server) as third:
                assert refused_at_connect(third)
            assert exchange(first, fc3(0, 1)) == OK_READ
        assert server.refused_connections == 1


def test_an_idle_connection_is_closed() -> None:
    with serving(ServerAccess(idle_timeout_s=0.2)) as server:
        with client(server) as sock:
            assert exchange(sock, fc3(0, 1)) == OK_READ
            assert is_closed(sock)  # no request: the server hangs up
        with client(server) as sock:
            sock.sendall(b"\x00\x01\x00\x00")  # half a header, then silence
            assert is_closed(sock)
        assert not server.has_partner


def test_a_warning_at_start_when_anyone_on_the_network_may_drive_the_station(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="plc.server")
    with serving():
        pass
    with serving(
        ServerAccess(allowed_clients=(ipaddress.ip_network("127.0.0.1"),)), host="0.0.0.0"
    ):
        pass
    assert not [r for r in caplog.records if "allowed_clients" in r.getMessage()]
    with serving(host="0.0.0.0"):
        pass
    [warning] = [r for r in caplog.records if "allowed_clients" in r.getMessage()]
    assert warning.levelno == logging.WARNING and "0.0.0.0" in warning.getMessage()


def test_a_client_leaving_is_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with serving() as server:
        with client(server) as sock:
            assert exchange(sock, fc3(0, 1)) == OK_READ
        for _ in range(int(HANG_GUARD_S / 0.01)):
            if not server.has_partner:
                break
            time.sleep(0.01)
        lines = [r.getMessage() for r in caplog.records if "left" in r.getMessage()]
    assert len(lines) == 1 and "after 1 request(s): closed by the client" in lines[0]
    assert not [r for r in caplog.records if r.name.startswith("pymodbus")]


def test_the_config_fields_make_the_server_access() -> None:
    config = PlcConfig(
        allowed_clients=("192.168.10.5", "10.0.0.0/24"),
        allow_readers=False,
        max_connections=1,
        idle_timeout_s=3,
    )
    access = ServerAccess.from_config(config)
    assert (access.allow_readers, access.max_connections, access.idle_timeout_s) == (False, 1, 3)
    for address, admitted in [
        ("192.168.10.5", True),
        ("192.168.10.6", False),
        ("10.0.0.77", True),
        ("::ffff:10.0.0.7", True),  # a dual-stack socket's view of an IPv4 peer
        ("10.0.1.1", False),
        ("not an address", False),
    ]:
        assert access.admits(address) is admitted, address
    assert ServerAccess.from_config(PlcConfig()).admits("203.0.113.9")  # empty: anyone
    with pytest.raises(ValidationError, match="allowed_clients"):
        PlcConfig(allowed_clients=("192.168.10.300",))
