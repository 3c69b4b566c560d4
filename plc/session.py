"""Opening the PLC link for ``aoi run`` / ``aoi bench``: ``--plc none | sim | tcp://HOST:PORT``.

:func:`open_plc` is the one context manager the CLI needs. It builds the peer for the station's
role, the :class:`~plc.link.StationLink` over it and, for ``sim``, an in-process
:class:`~plc.softplc.SoftPlc` on 127.0.0.1 with a free port, and it tears them down in the order
that lets the last part complete: the station stops accepting triggers and answers a part in
flight, the soft PLC finishes its handshake, then the threads and sockets close.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from typing import Any

from aoi.stats import percentiles
from plc.client import RegisterClient
from plc.errors import PlcConfigError
from plc.link import RecipeChanger, StationLink
from plc.peer import RegisterPeer
from plc.registers import RegisterMap
from plc.server import RegisterServer
from plc.settings import LinkSettings, Role
from plc.softplc import SimTiming, SoftPlc, SoftPlcLogic

log = logging.getLogger(__name__)

_TCP = re.compile(r"^tcp://(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})$")
SPEC_HELP = "none | sim | tcp://HOST:PORT"


@dataclass(frozen=True)
class PlcSpec:
    kind: str  # "none", "sim" or "tcp"
    host: str = ""
    port: int = 0


def tcp_spec(host: str, port: int) -> str:
    """The ``--plc`` spec of a PLC at ``host:port`` (an IPv6 host goes in brackets)."""
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


def parse_plc_spec(spec: str) -> PlcSpec:
    """``none``, ``sim`` or ``tcp://HOST:PORT`` (server: listen there; client: connect there)."""
    if spec in ("none", "sim"):
        return PlcSpec(spec)
    m = _TCP.match(spec)
    if m is None or not 0 < int(m["port"]) <= 65535:
        msg = f"--plc must be {SPEC_HELP}, got {spec!r}"
        raise PlcConfigError(msg)
    return PlcSpec("tcp", m["host"].strip("[]"), int(m["port"]))


def sim_timing(settings: LinkSettings) -> SimTiming:
    """The soft PLC's clocks, matched to the station's (same heartbeat and watchdog)."""
    return SimTiming(
        heartbeat_period_s=settings.heartbeat_period_ms / 1000,
        watchdog_periods=settings.watchdog_periods,
        result_timeout_s=max(5.0, settings.busy_timeout_ms / 1000 + 1.0),
    )


@dataclass
class PlcSession:
    """An open link (and soft PLC, for ``sim``); ``summary()`` is the JSON ``plc`` block."""

    spec: PlcSpec
    link: StationLink
    sim: SoftPlc | None = None

    def summary(self) -> dict[str, Any]:
        """Counted by the soft PLC when there is one (the line's view), else by the station."""
        write = percentiles(self.link.write_ms)
        if self.sim is not None:
            return {**self.sim.report.summary(), "write_ms": write}
        h = self.link.health()
        return {
            "parts": h.triggers,
            "acked": h.acked,
            "missed": h.missed,
            "mismatched": h.stale_results,
            "timeouts": h.timeouts,
            "write_ms": write,
        }

    def close(self, grace_s: float) -> None:
        """Stop taking triggers, answer the part in flight, let the PLC collect the last result."""
        self.link.shutdown()
        if self.sim is not None:
            if not self.sim.finish(grace_s):
                log.warning("soft PLC did not finish its last handshake within %.1f s", grace_s)
        elif not self.link.wait_result_acked(grace_s):
            log.warning("the PLC did not acknowledge the last result within %.1f s", grace_s)


@contextmanager
def open_plc(
    spec: str,
    settings: LinkSettings,
    *,
    role: Role | None = None,
    sim_parts: int | None = None,
    on_recipe_change: RecipeChanger | None = None,
    grace_s: float = 3.0,
) -> Iterator[PlcSession | None]:
    """The link described by ``spec`` (None for ``none``), closed in a safe order on exit."""
    parsed = parse_plc_spec(spec)
    if parsed.kind == "none":
        yield None
        return
    if role is not None:
        settings = replace(settings, role=role)
    if parsed.kind == "tcp":
        settings = replace(settings, host=parsed.host, port=parsed.port)
    elif parsed.kind == "sim":
        settings = replace(settings, host="127.0.0.1", port=0)
    layout = settings.register_map
    with ExitStack() as stack:
        sim: SoftPlc | None = None
        peer: RegisterPeer
        if settings.role == "server":
            server = stack.enter_context(
                RegisterServer(
                    layout.whole, layout.plc_block, settings.host, settings.port, "station-server"
                )
            )
            peer = server
            link = stack.enter_context(
                StationLink(peer, settings, on_recipe_change=on_recipe_change)
            )
            if parsed.kind == "sim":
                plc_peer = stack.enter_context(
                    RegisterClient("127.0.0.1", server.port, settings.unit_id, name="soft-plc")
                )
                sim = stack.enter_context(_soft_plc(plc_peer, layout, settings, sim_parts))
        else:
            host, port = settings.host, settings.port
            if parsed.kind == "sim":
                plc_server = stack.enter_context(
                    RegisterServer(layout.whole, layout.station_block, "127.0.0.1", 0, "soft-plc")
                )
                sim = stack.enter_context(_soft_plc(plc_server, layout, settings, sim_parts))
                port = plc_server.port
            peer = stack.enter_context(
                RegisterClient(
                    host,
                    port,
                    settings.unit_id,
                    settings.response_timeout_ms / 1000,
                    name="station-client",
                )
            )
            link = stack.enter_context(
                StationLink(peer, settings, on_recipe_change=on_recipe_change)
            )
        session = PlcSession(parsed, link, sim)
        log.info("PLC link: %s, station as %s", spec, settings.role)
        try:
            yield session
        finally:
            session.close(grace_s)


def _soft_plc(
    peer: RegisterPeer, layout: RegisterMap, settings: LinkSettings, parts: int | None
) -> SoftPlc:
    logic = SoftPlcLogic(parts, sim_timing(settings))
    return SoftPlc(peer, layout, logic, reconnect_max_s=settings.reconnect_max_ms / 1000)


@contextmanager
def open_soft_plc(
    role: Role,
    host: str,
    port: int,
    settings: LinkSettings,
    logic: SoftPlcLogic,
    *,
    scan_s: float = 0.005,
) -> Iterator[SoftPlc]:
    """A stand-alone soft PLC (``aoi plc-sim``): ``role`` is the soft PLC's own.

    ``client`` polls a station that serves at ``host:port``; ``server`` serves the PLC's
    registers there for a station in the client role.
    """
    layout = settings.register_map
    with ExitStack() as stack:
        peer: RegisterPeer
        if role == "client":
            peer = stack.enter_context(
                RegisterClient(
                    host, port, settings.unit_id, settings.response_timeout_ms / 1000, "soft-plc"
                )
            )
        else:
            peer = stack.enter_context(
                RegisterServer(layout.whole, layout.station_block, host, port, "soft-plc")
            )
        yield stack.enter_context(
            SoftPlc(
                peer, layout, logic, scan_s=scan_s, reconnect_max_s=settings.reconnect_max_ms / 1000
            )
        )
