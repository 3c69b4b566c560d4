"""``aoi doctor``'s checks of the plant endpoints: each configured broker answers, the OPC UA
port is free. Warnings, not failures: the station inspects with a broker down (its outbox
catches up later)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from aoi.app.preflight import Check
from aoi.config import StationConfig

TIMEOUT_S = 2.0


def _reach(name: str, url: str, default_port: int) -> Check:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    fix = f"start the broker at {host}:{port}, or correct [{name}] url"
    try:
        socket.create_connection((host, port), TIMEOUT_S).close()
    except OSError as err:
        return Check(name, False, f"{host}:{port} does not answer ({err})", fix, fatal=False)
    return Check(name, True, f"{host}:{port} answers")


def _bindable(endpoint: str) -> Check:
    parts = urlsplit(endpoint)
    host, port = parts.hostname or "0.0.0.0", parts.port or 4840  # noqa: S104 (the server's own)
    try:
        with socket.socket() as s:
            s.bind((host, port))
    except OSError as err:
        fix = "stop what holds the port, or choose another [opcua] endpoint"
        return Check("opcua", False, f"{host}:{port} cannot be listened on ({err})", fix, False)
    return Check("opcua", True, f"{host}:{port} is free to listen on")


def plant_checks(station: StationConfig) -> list[Check]:
    """One check per configured ``[mqtt]``, ``[cfx]``, ``[opcua]`` section."""
    checks = []
    if station.mqtt.url:
        checks.append(_reach("mqtt", station.mqtt.url, 1883))
    if station.cfx.url:
        checks.append(_reach("cfx", station.cfx.url, 5672))
    if station.opcua.endpoint:
        checks.append(_bindable(station.opcua.endpoint))
    return checks
