"""The report a quality engineer reads after a shift: yield, Pareto, false calls, cycle times.

:func:`build_report` gathers it as one JSON-able dict (what ``aoi report --json`` prints);
:func:`render` lays it out as text tables; :func:`write_csv` exports the inspections themselves,
one row per board, for a spreadsheet or an MES import.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import asdict
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from aoi.storage.db import Database
from aoi.storage.errors import StorageError
from aoi.storage.queries import (
    EXPORT_FIELDS,
    InspectionRecord,
    Window,
    YieldRow,
    cycle_times,
    defect_pareto,
    false_calls,
    iter_inspections,
    line_answers,
    local,
    yield_table,
)

_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _relative(text: str) -> timedelta | None:
    """``90m``, ``24h``, ``7d``, ``2w`` as a duration, or None."""
    if m := _RELATIVE.fullmatch(text.strip()):
        return timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
    return None


def parse_age(text: str) -> timedelta:
    """``90m``, ``24h``, ``365d``, ``52w`` as a duration; anything else is a StorageError."""
    if (age := _relative(text)) is not None:
        return age
    msg = f"--older-than must be like 90d, 52w or 24h, got {text!r}"
    raise StorageError(msg)


def parse_since(text: str, tz: tzinfo | None, now: datetime | None = None) -> datetime:
    """``24h``, ``90m``, ``7d``, ``2w`` ago, or an ISO date/time (local to ``tz`` if naive)."""
    if (age := _relative(text)) is not None:
        return (now or datetime.now(UTC)) - age
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError as err:
        msg = f"--since/--until must be like 24h, 7d, 2025-01-20 or 2025-01-20T06:00, got {text!r}"
        raise StorageError(msg) from err
    if t.tzinfo is None:
        t = t.replace(tzinfo=tz) if tz is not None else t.astimezone()
    return t.astimezone(UTC)


def _yield(rows: list[YieldRow]) -> list[dict[str, Any]]:
    return [{**asdict(r), "fpy": None if r.fpy is None else round(r.fpy, 4)} for r in rows]


def build_report(
    db: Database,
    window: Window,
    *,
    shift_starts_h: tuple[int, ...] = (6, 14, 22),
    tz: tzinfo | None = None,
) -> dict[str, Any]:
    """The whole report for one window as plain data."""
    by_recipe = yield_table(db, window, "recipe")
    total = YieldRow(
        "all",
        sum(r.total for r in by_recipe),
        sum(r.ok for r in by_recipe),
        sum(r.ng for r in by_recipe),
        sum(r.review for r in by_recipe),
        sum(r.error for r in by_recipe),
    )
    fc = false_calls(db, window)
    line = line_answers(db, window)
    cycle = cycle_times(db, window)
    zone = str(tz) if tz is not None else str(datetime.now().astimezone().tzinfo)
    return {
        "database": db.display,
        "since": window.since.isoformat(),
        "until": window.until.isoformat() if window.until else None,
        "recipe": window.recipe,
        "station_id": window.station_id,
        "timezone": zone,
        "total": _yield([total])[0],
        "by_hour": _yield(yield_table(db, window, "hour", tz=tz)),
        "by_shift": _yield(yield_table(db, window, "shift", shift_starts_h=shift_starts_h, tz=tz)),
        "by_recipe": _yield(by_recipe),
        "by_station": _yield(yield_table(db, window, "station")),
        "pareto": [asdict(r) for r in defect_pareto(db, window)],
        "false_calls": {
            "reviewed": fc.reviewed,
            "confirmed": fc.confirmed,
            "false_calls": fc.false_calls,
            "rate": fc.rate,
            "by_class": {k: {"reviewed": r, "false_calls": f} for k, (r, f) in fc.by_class.items()},
            "ng_boards_reviewed": fc.ng_boards_reviewed,
            "false_call_boards": fc.false_call_boards,
            "board_rate": fc.board_rate,
        },
        "line": {"received": line.received, "overridden": line.overridden},
        "cycle_ms": {
            "count": cycle.count,
            "p50": cycle.p50_ms,
            "p90": cycle.p90_ms,
            "p99": cycle.p99_ms,
            "max": cycle.max_ms,
            "mean": cycle.mean_ms,
            "over_budget": cycle.over_budget,
            "histogram": [
                [lo, None if math.isinf(hi) else hi, n] for lo, hi, n in cycle.histogram if n
            ],
        },
    }


def _pct(x: float | None) -> str:
    return "   -  " if x is None else f"{100 * x:5.1f}%"


def _yield_table(title: str, rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    width = max(12, *(len(r["group"]) for r in rows))
    out = [
        "",
        title,
        f"  {'':<{width}}  {'boards':>7} {'OK':>7} {'NG':>6} {'REVIEW':>6} {'ERROR':>6}"
        f"  {'FPY':>6}",
    ]
    out += [
        f"  {r['group']:<{width}}  {r['total']:>7} {r['ok']:>7} {r['ng']:>6} {r['review']:>6} "
        f"{r['error']:>6}  {_pct(r['fpy'])}"
        for r in rows
    ]
    return out


def render(report: dict[str, Any]) -> str:
    """The report as text tables for a terminal."""
    t = report["total"]
    until = report["until"] or "now"
    lines = [
        f"AOI report  {report['database']}",
        f"from {report['since']} to {until} (tables in {report['timezone']})"
        + (f"  recipe {report['recipe']}" if report["recipe"] else "")
        + (f"  station {report['station_id']}" if report["station_id"] else ""),
        f"boards {t['total']}  OK {t['ok']}  NG {t['ng']}  REVIEW {t['review']}  "
        f"ERROR {t['error']}  first-pass yield {_pct(t['fpy']).strip()}",
    ]
    lines += _yield_table("per hour", report["by_hour"])
    lines += _yield_table("per shift", report["by_shift"])
    lines += _yield_table("per recipe", report["by_recipe"])
    if len(report["by_station"]) > 1:
        lines += _yield_table("per station", report["by_station"])
    if report["pareto"]:
        lines += ["", "defect Pareto (called defects)"]
        lines.append(
            f"  {'class':<16} {'count':>7} {'share':>7} {'cum.':>7} "
            f"{'confirmed':>9} {'false':>6} {'pending':>7}"
        )
        lines += [
            f"  {r['class_name']:<16} {r['count']:>7} {_pct(r['share'])} {_pct(r['cumulative'])} "
            f"{r['confirmed']:>9} {r['false_calls']:>6} {r['not_verified']:>7}"
            for r in report["pareto"]
        ]
    fc = report["false_calls"]
    lines += [
        "",
        f"false calls  {fc['false_calls']} of {fc['reviewed']} reviewed defects "
        f"({_pct(fc['rate']).strip()}); boards {fc['false_call_boards']} of "
        f"{fc['ng_boards_reviewed']} reviewed NG boards ({_pct(fc['board_rate']).strip()})",
    ]
    lines.append(_line_text(report["line"]))
    c = report["cycle_ms"]
    lines.append(
        f"cycle        p50 {c['p50']:.2f} ms  p90 {c['p90']:.2f} ms  p99 {c['p99']:.2f} ms  "
        f"max {c['max']:.2f} ms  over budget {c['over_budget']} of {c['count']}"
    )
    return "\n".join(lines)


def _line_text(line: dict[str, Any]) -> str:
    """What the line received; a link fault that turned an OK or NG into ERROR is named."""
    got = line["received"]
    told = "  ".join(f"{k} {n}" for k, n in sorted(got.items()) if k) or "nothing"
    text = f"line         received {told}"
    if got.get(""):
        text += f"  (no PLC answer recorded: {got['']})"
    if line["overridden"]:
        faults = ", ".join(f"{k} {n}" for k, n in sorted(line["overridden"].items()))
        text += f"\n             inspected OK/NG/REVIEW, answered ERROR by a link fault: {faults}"
    return text


def render_lookup(records: list[InspectionRecord], tz: tzinfo | None) -> str:
    """Inspections of one board and their defects, for ``aoi report --serial``."""
    if not records:
        return "no inspection found"
    lines = []
    for r in records:
        lines.append(
            f"{local(r.inspected_at, tz):%Y-%m-%d %H:%M:%S}  {r.verdict:<6} serial {r.serial!r}  "
            f"part {r.part_sequence}  inspection {r.inspection_id}  station {r.station_id}  "
            f"recipe {r.recipe_name} ({r.recipe_hash[:12]})  {r.cycle_ms:.1f} ms  {r.uuid}"
        )
        if r.error:
            lines.append(f"    error ({r.error_kind}): {r.error}")
        if r.line_verdict is not None and (r.line_verdict != r.verdict or r.line_error):
            lines.append(f"    the line received {r.line_verdict} ({r.line_error})")
        elif r.line_error:
            lines.append(f"    the line never collected it ({r.line_error})")
        if r.verdict_reason:
            lines.append(f"    reason: {r.verdict_reason}")
        if r.image_path:
            lines.append(f"    image: {r.image_path}")
        lines += [
            f"    defect {d.id}: {d.class_name} ({d.band}) score {d.score:.2f} "
            f"box {d.bbox_xyxy_px} area {d.area_px} px  {d.review_state}"
            for d in r.defects
        ]
    return "\n".join(lines)


def write_csv(db: Database, window: Window, path: Path) -> int:
    """Write one row per inspection in the window; returns the number of rows."""
    n = 0
    try:
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=EXPORT_FIELDS)
            writer.writeheader()
            for row in iter_inspections(db, window):
                writer.writerow(row)
                n += 1
    except OSError as err:
        msg = f"CSV export to {path} failed ({err})"
        raise StorageError(msg) from err
    return n
