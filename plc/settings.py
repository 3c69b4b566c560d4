"""Settings of the PLC link, as the station config's ``[plc]`` section gives them.

``aoi.config.PlcConfig`` is the TOML schema (checked when the config loads); the core must not
import ``plc``, so the CLI hands its ``model_dump()`` to :meth:`LinkSettings.from_dict`, which
builds and checks the register map. A test keeps the two field lists identical.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from plc.errors import PlcConfigError
from plc.handshake import Timing
from plc.registers import DEFAULT_MAP, RegisterMap

Role = Literal["server", "client"]


@dataclass(frozen=True)
class LinkSettings:
    """How the station talks to its PLC; every field is documented in plc/README.md."""

    #: server: the PLC polls the station (the usual vision-system arrangement);
    #: client: the station reads and writes the PLC's own registers.
    role: Role = "server"
    #: server: the interface to listen on; client: the PLC's address.
    host: str = "127.0.0.1"
    port: int = 502
    #: The PLC's Modbus unit id (client role); a station acting as server answers any unit id.
    unit_id: int = 1
    heartbeat_period_ms: float = 250.0
    watchdog_periods: int = 3
    require_plc_heartbeat: bool = True
    #: How often the link reads the PLC block (client role) or checks its timers (server role).
    poll_period_ms: float = 5.0
    response_timeout_ms: float = 500.0
    reconnect_min_ms: float = 100.0
    reconnect_max_ms: float = 2000.0
    result_ack_timeout_ms: float = 5000.0
    busy_timeout_ms: float = 10000.0
    start_online: bool = True
    register_map: RegisterMap = field(default=DEFAULT_MAP)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "[plc]") -> LinkSettings:
        """Settings from the station config's ``[plc]`` section (``map`` holds the overrides)."""
        values = dict(raw)
        map_raw = dict(values.pop("map", None) or {})
        known = {f.name for f in fields(cls)} - {"register_map"}
        unknown = sorted(set(values) - known)
        if unknown:
            msg = f"{source}: unknown setting(s) {unknown}; known: {sorted(known)}"
            raise PlcConfigError(msg)
        try:
            layout = RegisterMap.build(**map_raw, source=f"{source}.map")
        except TypeError as err:
            msg = f"{source}.map: {err}"
            raise PlcConfigError(msg) from err
        return cls(**values, register_map=layout)

    @property
    def timing(self) -> Timing:
        return Timing(
            heartbeat_period_s=self.heartbeat_period_ms / 1000,
            watchdog_periods=self.watchdog_periods,
            require_plc_heartbeat=self.require_plc_heartbeat,
            result_ack_timeout_s=self.result_ack_timeout_ms / 1000,
            busy_timeout_s=self.busy_timeout_ms / 1000,
        )
