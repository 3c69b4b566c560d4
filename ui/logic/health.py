"""The four health lights (camera, engine, PLC link, database) and the alarms, in plain language.

Qt-free: each light is computed from snapshots the core keeps (the runner's last results, the
PLC link's :class:`~plc.link.LinkHealth`, storage's :class:`~aoi.storage.HealthSnapshot`), so the
rules are tested without a screen. A light says what is wrong in words an operator understands
from two metres away (the short ``summary``), why (``cause``) and what to do (``action``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from aoi.runner import CounterSnapshot, RunState
from aoi.storage import HealthSnapshot
from aoi.types import ErrorKind, InspectionResult
from plc.link import LinkHealth
from plc.peer import LinkState
from plc.registers import ERROR_TEXT, ErrorCode

#: Share of recent boards over budget that turns the engine light amber.
OVER_BUDGET_WARN = 0.01

#: Kinds of ERROR the camera light shows (no image, or an unusable one); the engine light shows
#: the others (the board was seen but could not be inspected).
CAMERA_ERRORS = frozenset({ErrorKind.CAMERA_TIMEOUT, ErrorKind.CAMERA_LOST, ErrorKind.BAD_FRAME})
ENGINE_ERRORS = frozenset(ErrorKind) - CAMERA_ERRORS - {ErrorKind.NONE}


class Level(enum.IntEnum):
    OFF = 0  # not in use (grey)
    OK = 1  # green
    WARN = 2  # amber: the station inspects, someone should look
    FAULT = 3  # red: the station cannot do its job


@dataclass(frozen=True)
class Light:
    name: str
    level: Level
    summary: str
    cause: str
    action: str = ""


@dataclass(frozen=True)
class Alarm:
    level: Level
    source: str
    title: str
    cause: str
    action: str


def camera_light(
    source_label: str,
    *,
    warnings: tuple[str, ...] = (),
    open_error: str = "",
    fault: str = "",
    last: InspectionResult | None = None,
    acquiring: bool = True,
) -> Light:
    """The camera light; ``acquiring`` False (the station stopped) greys an otherwise good one."""
    name = "Camera"
    if not source_label and not open_error:
        return Light(name, Level.OFF, "Not open", "The camera opens with the recipe.")
    if open_error:
        return Light(
            name,
            Level.FAULT,
            "No camera",
            f"The image source could not be opened: {open_error}",
            "Check the camera's power and cable, and the GenTL producer in the station "
            "config; then activate the recipe again on the Engineer screen.",
        )
    if fault:
        return Light(
            name,
            Level.FAULT,
            "Camera lost",
            f"Inspection stopped: {fault}",
            "Check the camera's cable and power, then press START.",
        )
    kind = last.error_kind if last is not None else ErrorKind.NONE
    if last is not None and kind in CAMERA_ERRORS:
        if kind is ErrorKind.CAMERA_LOST:
            return Light(
                name,
                Level.FAULT,
                "Camera lost: reconnecting",
                f"The camera stopped answering and the last part got no image: {last.error}",
                "Check the camera's cable and power; the station reconnects by itself and the "
                "next good image clears this.",
            )
        if kind is ErrorKind.CAMERA_TIMEOUT:
            return Light(
                name,
                Level.FAULT,
                "No image",
                f"The last part got no image: {last.error}",
                "Check the trigger wiring and the camera cable; the next good image clears this.",
            )
        return Light(
            name,
            Level.WARN,
            "Bad image",
            f"The last image was unusable: {last.error}",
            "Check the camera's pixel format and ROI against the recipe.",
        )
    if warnings:
        return Light(
            name,
            Level.WARN,
            "Settings refused",
            f"{source_label}: {warnings[0]}"
            + (f" (and {len(warnings) - 1} more)" if len(warnings) > 1 else ""),
            "Compare the recipe's camera settings with the camera page (Engineer).",
        )
    if not acquiring:
        # A stopped station takes no images: green here would read as "inspecting" from afar.
        return Light(name, Level.OFF, "Not acquiring", f"{source_label}; the station is stopped.")
    return Light(name, Level.OK, "Images arriving" if last else "Ready", source_label)


def engine_light(
    engine_label: str,
    *,
    on_cpu: bool = False,
    open_error: str = "",
    last: InspectionResult | None = None,
    counters: CounterSnapshot | None = None,
) -> Light:
    name = "Engine"
    if open_error:
        return Light(
            name,
            Level.FAULT,
            "Not loaded",
            f"The inspection engine could not load the recipe: {open_error}",
            "Check the model file the recipe names, or activate another recipe (Engineer).",
        )
    if last is not None and last.error_kind in ENGINE_ERRORS:
        return Light(
            name,
            Level.WARN,
            "Board not inspected",
            f"The last board could not be inspected: {last.error}",
            "Check that the right board is under the camera and lies flat; "
            "the PLC received ERROR for it.",
        )
    if counters is not None and counters.recent_ms:
        over = sum(counters.recent_over)
        n = len(counters.recent_over)
        if over / n > OVER_BUDGET_WARN:
            p99 = f", p99 {counters.p99_ms:.0f} ms" if counters.p99_ms is not None else ""
            return Light(
                name,
                Level.WARN,
                "Too slow",
                f"{over} of the last {n} boards took longer than the "
                f"{counters.budget_ms:.0f} ms budget{p99}.",
                "This PC inspects on the CPU: the budget needs the station's GPU (TensorRT or "
                "ONNX Runtime CUDA)."
                if on_cpu
                else "Close other programs on the station PC; check the GPU's load and cooling.",
            )
    return Light(name, Level.OK, "Inspecting" if last else "Loaded", engine_label)


def plc_light(
    spec: str, health: LinkHealth | None, *, address: str = "", running: bool = False
) -> Light:
    """The PLC link: none configured, connecting, down, faulted, waiting, or up."""
    name = "PLC"
    if health is None:
        return Light(
            name,
            Level.OFF,
            "No PLC",
            f"Running without a PLC link (--plc {spec}): verdicts go to no line.",
        )
    where = f" ({address})" if address else ""
    if health.state is LinkState.DOWN:
        return Light(
            name,
            Level.FAULT,
            "Link down",
            f"No connection to the PLC{where}: {health.error_message or 'connection lost'}.",
            "Check the Ethernet cable to the PLC and that the PLC is on; the station "
            "reconnects by itself.",
        )
    if health.state is LinkState.CONNECTING:
        return Light(
            name,
            Level.WARN,
            "Connecting",
            f"Connecting to the PLC{where}.",
            "If this stays, check the PLC's address in the station config and the cable.",
        )
    if health.state is LinkState.CLOSED:
        return Light(name, Level.OFF, "Closed", "The PLC link is closed (station shutting down).")
    if health.error_code is ErrorCode.PLC_HEARTBEAT_LOST:
        return Light(
            name,
            Level.FAULT,
            "PLC not answering",
            "The PLC's heartbeat stopped: its program is stopped or the cable is unplugged "
            f"({health.error_message}).",
            "Check the cable to the PLC and that its program runs; the line resets the error "
            "once the heartbeat is back.",
        )
    if health.error_code is not ErrorCode.NONE:
        text = ERROR_TEXT.get(health.error_code, health.error_code.name)
        return Light(
            name,
            Level.FAULT,
            f"Error {health.error_code.name.replace('_', ' ').lower()}",
            f"The station reports ERROR to the line: {text}. {health.error_message}".strip(),
            "The line resets it with CLEAR_ERROR once the cause is gone.",
        )
    if not health.plc_alive:
        return Light(
            name,
            Level.WARN,
            "Waiting for PLC",
            f"No heartbeat from the PLC{where} yet.",
            "Check that the PLC program runs and talks to this station.",
        )
    if not running:
        return Light(
            name,
            Level.OK,
            "Connected, offline",
            f"PLC connected{where}; the station is stopped, so READY is off.",
        )
    return Light(
        name,
        Level.OK,
        "Online",
        f"PLC connected{where}: {health.acked} parts answered, {health.missed} missed.",
    )


def database_light(snapshot: HealthSnapshot | None, *, pending_warn: int = 500) -> Light:
    name = "Database"
    if snapshot is None:
        return Light(name, Level.OFF, "No database", "Inspections are not recorded.")
    if snapshot.alarms:
        lost = snapshot.lost or snapshot.rejected
        return Light(
            name,
            Level.FAULT if lost else Level.WARN,
            "Records lost" if lost else "Not saving",
            snapshot.alarms[0],
            "Inspections wait in the journal and are written when the database is back; "
            "check free disk space and the database server.",
        )
    if snapshot.pending > pending_warn:
        return Light(
            name,
            Level.WARN,
            "Falling behind",
            f"{snapshot.pending} inspections wait to be written to "
            f"{short_place(snapshot.database)}.",
            "Check the disk and the database server's load.",
        )
    return Light(
        name,
        Level.OK,
        "Saving",
        f"{snapshot.committed} of {snapshot.published} inspections of this run saved "
        f"to {short_place(snapshot.database)}.",
    )


def short_place(database: str) -> str:
    """A database as a light can show it whole: a file's name and folder (``aoi.db in
    /var/lib/aoi``), a server's host and database name, never a password."""
    scheme, sep, rest = database.partition("://")
    if sep and not scheme.startswith("sqlite"):
        return f"{scheme.split('+')[0]} {rest.rsplit('@', 1)[-1]}"
    path = Path(rest.removeprefix("/") if sep else database)
    return f"{path.name} in {path.parent}" if path.name else database


def alarms_from(
    lights: list[Light], *, state: RunState, dropped: dict[str, int] | None = None
) -> list[Alarm]:
    """What needs attention, worst first: every light that is not green, and lost events."""
    out = [Alarm(li.level, li.name, li.summary, li.cause, li.action) for li in lights]
    out = [a for a in out if a.level >= Level.WARN]
    if state is RunState.FAULT:
        out.append(
            Alarm(
                Level.FAULT,
                "Station",
                "Inspection stopped",
                "The cycle stopped on a fault (see the Camera light).",
                "Fix the cause, then press START.",
            )
        )
    for name, n in (dropped or {}).items():
        if n and name != "gui":  # the screen may skip display frames; records may not
            out.append(
                Alarm(
                    Level.FAULT,
                    "Station",
                    "Overloaded",
                    f"{n} results did not reach {name} in time.",
                    "Close other programs on the station PC.",
                )
            )
    return sorted(out, key=lambda a: -a.level)
