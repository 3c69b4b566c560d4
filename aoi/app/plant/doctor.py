"""``aoi doctor``'s checks of the plant endpoints: each configured broker answers, the OPC UA
port is free, its channel is encrypted. Warnings, not failures: the station inspects with a
broker down (its outbox catches up later). A configured OPC UA certificate or key that cannot be
read is a failure: the server cannot start without it."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from aoi.app.plant.placement import PlacementError, check_cpus
from aoi.app.preflight import Check
from aoi.config import OpcuaConfig, StationConfig

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


def _opcua_security(config: OpcuaConfig) -> Check:
    """The OPC UA channel: encrypted with a certificate that can be read, or said to be not."""
    if config.security == "none":
        fix = 'set [opcua] security = "sign_encrypt" unless the network is trusted'
        return Check(
            "opcua security", False, "unencrypted: the password crosses in clear", fix, False
        )
    if not (config.certificate or config.private_key):
        return Check("opcua security", True, "encrypted, self-signed certificate (data folder)")
    for what, path in (("certificate", config.certificate), ("private_key", config.private_key)):
        if not path or not Path(path).is_file() or not os.access(path, os.R_OK):
            fix = f"give [opcua] {what} a readable file (or leave both empty: self-signed)"
            return Check("opcua security", False, f"{what} {path!r} cannot be read", fix)
    return Check("opcua security", True, f"encrypted with {config.certificate}")


def _cpus(station: StationConfig) -> Check:
    """``[plant] cpus`` names CPUs this machine has (a failure: the station would not start)."""
    try:
        cpus = check_cpus(station.plant.cpus)
    except PlacementError as err:
        fix = "correct [plant] cpus (or leave it empty: the station's CPUs)"
        return Check("plant cpus", False, str(err).split(": ", 1)[-1], fix)
    where = f"CPUs {sorted(cpus)}" if cpus else "the station's CPUs"
    return Check("plant cpus", True, f"publishers on {where}, niceness {station.plant.niceness}")


def plant_checks(station: StationConfig) -> list[Check]:
    """One check per configured ``[mqtt]``, ``[cfx]``, ``[opcua]`` section, and where the
    publishers run when any is."""
    checks = []
    if station.mqtt.url or station.cfx.url or station.opcua.endpoint:
        checks.append(_cpus(station))
    if station.mqtt.url:
        checks.append(_reach("mqtt", station.mqtt.url, 1883))
    if station.cfx.url:
        checks.append(_reach("cfx", station.cfx.url, 5672))
    if station.opcua.endpoint:
        checks.append(_bindable(station.opcua.endpoint))
        checks.append(_opcua_security(station.opcua))
    return checks
