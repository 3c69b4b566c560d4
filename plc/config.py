"""What the PLC link derives from the station config's ``[plc]`` section (``aoi.config.PlcConfig``).

``aoi.config.PlcConfig`` is the one schema of the link's settings: the core owns the station
config and checks it when it loads, and the core never imports ``plc``. What only the link knows
how to check or derive lives here: the register map that ``[plc.map]`` describes (names, overlaps,
block sizes) and the handshake's clocks. Overrides from the command line or the GUI (role,
address, starting offline) are ``config.model_copy(update=...)`` by whoever opens the link.
"""

from __future__ import annotations

from aoi.config import PlcConfig, PlcRole
from plc.handshake_state import Timing
from plc.registers import RegisterMap

#: Which end of the link serves the registers: ``PlcConfig.role``'s type, defined once.
Role = PlcRole


def register_map(config: PlcConfig, source: str = "[plc]") -> RegisterMap:
    """The register map ``config.map`` describes; :class:`~plc.errors.PlcConfigError` if bad.

    ``source`` names the section in messages (``station.toml: [plc]`` gives
    ``station.toml: [plc].map: station field defect_count at 39..39 overlaps verdict ...``).
    """
    m = config.map
    return RegisterMap.build(
        plc_base=m.plc_base,
        station_base=m.station_base,
        serial_chars=m.serial_chars,
        offsets=m.offsets,
        source=f"{source}.map",
    )


def handshake_timing(config: PlcConfig) -> Timing:
    """The handshake's clocks, in seconds, from the config's milliseconds."""
    return Timing(
        heartbeat_period_s=config.heartbeat_period_ms / 1000,
        watchdog_periods=config.watchdog_periods,
        require_plc_heartbeat=config.require_plc_heartbeat,
        result_ack_timeout_s=config.result_ack_timeout_ms / 1000,
        busy_timeout_s=config.busy_timeout_ms / 1000,
    )
