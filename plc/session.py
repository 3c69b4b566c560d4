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
from dataclasses import dataclass
from typing import Any

from aoi.config import PlcConfig
from aoi.stats import percentiles
from plc.client import RegisterClient
from plc.config import Role, register_map
from plc.errors import PlcConfigError
from plc.events import ActiveRecipe
from plc.link import RecipeChanger, StationLink
from plc.peer import RegisterPeer
from plc.registers import RegisterMap
from plc.server import RegisterServer, ServerAccess
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


def sim_timing(config: PlcConfig) -> SimTiming:
    """The soft PLC's clocks, matched to the station's (same heartbeat and watchdog)."""
    return SimTiming(
        heartbeat_period_s=config.heartbeat_period_ms / 1000,
        watchdog_periods=config.watchdog_periods,
        result_timeout_s=max(5.0, config.busy_timeout_ms / 1000 + 1.0),
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
        # What the line was told, by verdict: an inspection's OK that a link fault turned into
        # ERROR counts as ERROR here (the run's ``verdicts`` count the inspections).
        line = dict(self.link.line_verdicts)
        if self.sim is not None:
            return {**self.sim.report.summary(), "write_ms": write, "line_verdicts": line}
        h = self.link.health()
        return {
            "line_verdicts": line,
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
        elif not self.link.wait_result_collected(grace_s):
            log.warning(
                "the PLC did not acknowledge the last result and release RESULT_ACK within %.1f s",
                grace_s,
            )


@contextmanager
def open_plc(
    spec: str,
    config: PlcConfig,
    *,
    source: str = "[plc]",
    role: Role | None = None,
    sim_parts: int | None = None,
    on_recipe_change: RecipeChanger | None = None,
    recipe: ActiveRecipe | None = None,
    grace_s: float = 3.0,
) -> Iterator[PlcSession | None]:
    """The link described by ``spec`` (None for ``none``), closed in a safe order on exit.

    ``config`` is the station config's ``[plc]`` section (``source`` names it in the message of
    a bad register map, which is refused whatever ``spec`` says); ``role`` overrides its role,
    ``tcp://HOST:PORT`` its address, and ``sim`` puts both ends on 127.0.0.1 with a free port.
    The session's ``link.config`` is the section as the link runs it, with the real address.
    ``recipe`` is the recipe the station starts with: ``active_recipe`` shows it from the first
    write, while READY waits for the station to be ready.
    """
    parsed = parse_plc_spec(spec)
    layout = register_map(config, source)
    if parsed.kind == "none":
        yield None
        return
    if role is not None:
        config = config.model_copy(update={"role": role})
    if parsed.kind == "tcp":
        config = config.model_copy(update={"host": parsed.host, "port": parsed.port})
    with ExitStack() as stack:
        sim: SoftPlc | None = None
        peer: RegisterPeer
        if config.role == "server":
            host, port = ("127.0.0.1", 0) if parsed.kind == "sim" else (config.host, config.port)
            # The allow-list and the one controlling connection guard the line's port; the
            # in-process soft PLC on a free loopback port needs no guard.
            access = None if parsed.kind == "sim" else ServerAccess.from_config(config)
            server = stack.enter_context(
                RegisterServer(
                    layout.whole, layout.plc_block, host, port, "station-server", access=access
                )
            )
            config = config.model_copy(update={"host": host, "port": server.port})
            peer = server
            link = stack.enter_context(
                StationLink(
                    peer, config, source=source, on_recipe_change=on_recipe_change, recipe=recipe
                )
            )
            if parsed.kind == "sim":
                plc_peer = stack.enter_context(
                    RegisterClient("127.0.0.1", server.port, config.unit_id, name="soft-plc")
                )
                sim = stack.enter_context(_soft_plc(plc_peer, layout, config, sim_parts))
        else:
            if parsed.kind == "sim":
                plc_server = stack.enter_context(
                    RegisterServer(layout.whole, layout.station_block, "127.0.0.1", 0, "soft-plc")
                )
                sim = stack.enter_context(_soft_plc(plc_server, layout, config, sim_parts))
                config = config.model_copy(update={"host": "127.0.0.1", "port": plc_server.port})
            peer = stack.enter_context(
                RegisterClient(
                    config.host,
                    config.port,
                    config.unit_id,
                    config.response_timeout_ms / 1000,
                    name="station-client",
                )
            )
            link = stack.enter_context(
                StationLink(
                    peer, config, source=source, on_recipe_change=on_recipe_change, recipe=recipe
                )
            )
        session = PlcSession(parsed, link, sim)
        log.info("PLC link: %s, station as %s", spec, config.role)
        try:
            yield session
        finally:
            session.close(grace_s)


def _soft_plc(
    peer: RegisterPeer, layout: RegisterMap, config: PlcConfig, parts: int | None
) -> SoftPlc:
    logic = SoftPlcLogic(parts, sim_timing(config))
    return SoftPlc(peer, layout, logic, reconnect_max_s=config.reconnect_max_ms / 1000)


@contextmanager
def open_soft_plc(
    role: Role,
    host: str,
    port: int,
    config: PlcConfig,
    logic: SoftPlcLogic,
    *,
    source: str = "[plc]",
    scan_s: float = 0.005,
) -> Iterator[SoftPlc]:
    """A stand-alone soft PLC (``aoi plc-sim``): ``role`` is the soft PLC's own.

    ``client`` polls a station that serves at ``host:port``; ``server`` serves the PLC's
    registers there for a station in the client role. ``config`` gives the register map (a bad
    one is refused naming ``source``), the unit id and the timeouts.
    """
    layout = register_map(config, source)
    with ExitStack() as stack:
        peer: RegisterPeer
        if role == "client":
            peer = stack.enter_context(
                RegisterClient(
                    host, port, config.unit_id, config.response_timeout_ms / 1000, "soft-plc"
                )
            )
        else:
            peer = stack.enter_context(
                RegisterServer(layout.whole, layout.station_block, host, port, "soft-plc")
            )
        yield stack.enter_context(
            SoftPlc(
                peer, layout, logic, scan_s=scan_s, reconnect_max_s=config.reconnect_max_ms / 1000
            )
        )
