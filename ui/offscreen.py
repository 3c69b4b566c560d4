"""``aoi gui --screenshot`` and ``aoi gui --bench``: the GUI run offscreen, for review and measure.

Screenshots: the station inspects ``--cycles`` boards (a few more when the first NG reaches the
screen late), then every screen is opened and grabbed into a PNG; the operator screen shows the
run's last NG board, so its overlays are in the picture. The run uses a temporary data folder,
so the pictures show exactly this run; a few review decisions are made (signed
``screenshot-demo``) so the false-call rate has something to show, and two demo accounts appear
on the users screen. Nothing outside the temporary folder is written; recipe edits shown on the
pictures are never saved.

Bench: the GUI's own cost on the cycle. One station, one process; blocks of N boards alternate
between the GUI detached (subscriber returns at once, window hidden, no Qt event processing) and
attached (window shown offscreen, live image, 4 Hz refresh, the Qt event loop running). Cycle
p50/p99 of each side, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from aoi.app.station import Station, StationOptions
from aoi.runner import RunState
from aoi.types import InspectionResult, Verdict
from ui.app import Gui
from ui.bridge import prepare
from ui.camera_page import viky_producer
from ui.logic.users import Role, User, UserError
from ui.main_window import MainWindow


def pump(app: QApplication, until: Callable[[], bool], timeout_s: float) -> bool:
    """Run the Qt event loop until ``until()`` holds; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while not until():
        if time.monotonic() > deadline:
            return False
        app.processEvents()
        time.sleep(0.01)
    app.processEvents()
    return True


def run_event_loop_until(done: Callable[[], bool], check_ms: int = 50) -> None:
    """Run Qt's event loop (as ``app.exec`` does: it sleeps until an event) until ``done()``."""
    loop = QEventLoop()
    timer = QTimer()
    timer.timeout.connect(lambda: loop.quit() if done() else None)
    timer.start(check_ms)
    loop.exec()
    timer.stop()


def settle(app: QApplication, station: Station, timeout_s: float = 15.0) -> None:
    """Wait until the cycle stopped and storage wrote what it was given (records, images)."""
    pump(
        app,
        lambda: station.runner is None or station.runner.state is not RunState.RUNNING,
        timeout_s * 20,
    )
    last = [-1, time.monotonic()]

    def quiet() -> bool:
        assert station.storage is not None
        h = station.storage.status()
        if h.archive_written != last[0]:
            last[:] = [h.archive_written, time.monotonic()]
        return h.committed + h.lost >= h.published and time.monotonic() - last[1] > 0.6

    pump(app, quiet, timeout_s)


def _grab(app: QApplication, window: MainWindow, path: Path) -> Path:
    for _ in range(3):
        app.processEvents()
        time.sleep(0.05)
    window.refresh()
    app.processEvents()
    if not window.grab().save(str(path)):
        msg = f"could not write {path}"
        raise OSError(msg)
    print(f"[aoi gui] wrote {path}")
    return path


def _grab_about(app: QApplication, window: MainWindow, path: Path) -> None:
    """The About box (its own window: grabbed by itself), then closed."""
    window.about_button.show_box()
    box = window.about_button.box
    assert box is not None
    for _ in range(3):
        app.processEvents()
        time.sleep(0.05)
    if not box.grab().save(str(path)):
        msg = f"could not write {path}"
        raise OSError(msg)
    print(f"[aoi gui] wrote {path}")
    box.close()


def _heartbeat_blip(app: QApplication, w: MainWindow, station: Station) -> None:
    """A transient PLC fault for the alarm history: the soft PLC's heartbeat stops, then
    resumes (the station runs meanwhile, as on the line)."""
    plc = station.plc
    if plc is None or plc.sim is None or station.runner is None:
        return
    light = w.operator.lights["PLC"]
    station.start("operator")
    plc.sim.freeze_heartbeat()
    pump(app, lambda: (w.refresh(), light.light.summary)[1] == "PLC not answering", 20)
    plc.sim.freeze_heartbeat(False)
    pump(app, lambda: (w.refresh(), light.light.summary)[1] == "Online", 20)
    station.stop("operator")
    settle(app, station)
    if station.alarms is not None:
        station.alarms.flush()
    w.refresh()


def screenshots(app: QApplication, args: argparse.Namespace, options: StationOptions) -> int:
    out: Path = args.screenshot
    out.mkdir(parents=True, exist_ok=True)
    last_ng: list[InspectionResult] = []

    def keep_ng(r: InspectionResult) -> None:
        if r.verdict is Verdict.NG:
            last_ng[:] = [r]

    with Gui(options, subscribers=[("screenshot", keep_ng)]) as gui:
        w, station = gui.window, gui.station
        assert w is not None
        w.fit_to(*(args.size or (1366, 768)))
        w.show()
        w.fit_to(*(args.size or (1366, 768)))  # showing may grow it past the size asked for
        runner = station.runner
        if runner is not None:
            # Until stopped: a fast cycle (20 ms on 2 CPU cores) would end a run of --cycles
            # boards before the screen's 4 Hz refresh showed an NG, and the picture would be
            # of a stopped station.
            station.start("operator")
            # Mid-run: the live banner, the last NG held on the image, the strip of results.
            pump(app, lambda: runner.cycles_done >= max(1, args.cycles * 2 // 3), 120)
            pump(app, lambda: w.operator.last_ng is not None, 30)
            w.refresh()
            _grab(app, w, out / "operator.png")
            pump(app, lambda: runner.cycles_done >= args.cycles, 120)
            station.stop("operator")
        settle(app, station)
        pump(app, lambda: gui.bridge.idle and not w._frame_timer.isActive(), 3.0)
        if last_ng and w.operator.last_ng is None:  # no NG frame reached the screen
            w.operator.show_frame(prepare(last_ng[0], fit=gui.bridge.fit))
        _grab(app, w, out / "operator-stopped.png")
        _heartbeat_blip(app, w, station)
        w.log_in(User("screenshot-demo", Role.ADMIN))
        w.operator.alarm_tabs.setCurrentIndex(1)
        history = w.operator.history
        plc_rows = [e.source for e in w.alarm_log.entries].count("PLC")
        if plc_rows:
            w.acknowledge_alarm(next(e.id for e in w.alarm_log.entries if e.source == "PLC"))
        _grab(app, w, out / "alarm-history.png")
        history.table.clearSelection()
        w.operator.alarm_tabs.setCurrentIndex(0)

        w.open_screen("review")
        w.review.reload()
        for key in ("confirm", "false_call", "confirm", "confirm", "false_call"):
            w.review.decide(key)
        w.review.reason.setCurrentIndex(1)
        w.review.decide("accept")
        w.review.queue.setCurrentRow(0)
        _grab(app, w, out / "review.png")

        w.open_screen("engineer")
        w.engineer.reload_list()
        w.engineer.dry_boards.setValue(10)
        w.engineer.start_dry_run()
        pump(app, lambda: w.engineer._dry_thread is None, 120)
        _grab(app, w, out / "recipe-editor.png")
        form = w.engineer.form
        form.widget("classes.short.score").setValue(1.5)  # type: ignore[attr-defined]
        _grab(app, w, out / "recipe-invalid.png")
        form.widget("classes.short.score").setValue(0.55)  # type: ignore[attr-defined]
        form.setCurrentIndex(1)
        size = form.canvas.size_px
        form.canvas.drawn.emit(8, 8, size[0] // 8, size[1] // 10)
        form.mask_note.setText("fiducial")
        form._note_mask("fiducial")
        _grab(app, w, out / "recipe-masks.png")
        w.engineer.open(w.engineer.path) if w.engineer.path else None

        w.open_screen("camera")
        viky = viky_producer()
        if viky is not None:
            w.camera.producers.setText(str(viky))
            w.camera.find()
            w.camera.test_grab()
        _grab(app, w, out / "camera.png")
        _new_product(app, w, out)

        for name, role in (("anna", Role.OPERATOR), ("ben", Role.ENGINEER)):
            try:
                w.store.add(name, role, "2468")
                station.audit(w.session.name, f"user {name}", None, role.label)
            except UserError:
                pass
        w.open_screen("admin")
        _grab(app, w, out / "users-audit.png")
        _grab_about(app, w, out / "about.png")
        w.open_screen("operator")
    return 0


def _new_product(app: QApplication, w: MainWindow, out: Path) -> None:
    """The commissioning flow: a copy as a new product, its template from a grab, a dry run.

    The new recipe goes to a temporary site folder: pictures never leave recipes behind."""
    eng, golden = w.engineer, w.camera.golden
    with tempfile.TemporaryDirectory(prefix="aoi-site-") as site:
        old = os.environ.get("AOI_RECIPES_DIR")
        os.environ["AOI_RECIPES_DIR"] = site
        try:
            w.open_screen("engineer")
            if eng.new_from("board-new") is None:
                return
            _grab(app, w, out / "new-product.png")
            w.open_screen("camera")
            golden.source.setCurrentIndex(golden.source.findData("synthetic"))
            golden.grab()
            golden.save_template()
            golden.check()
            _grab(app, w, out / "new-product-template.png")
            w.open_screen("engineer")
            eng.dry_boards.setValue(10)
            eng.start_dry_run()
            pump(app, lambda: eng._dry_thread is None, 120)
            eng.activate()
            _grab(app, w, out / "new-product-active.png")
        finally:
            if old is None:
                os.environ.pop("AOI_RECIPES_DIR", None)
            else:
                os.environ["AOI_RECIPES_DIR"] = old


def _percentiles(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {
        "boards": int(a.size),
        "p50": round(float(np.percentile(a, 50)), 3),
        "p99": round(float(np.percentile(a, 99)), 3),
        "max": round(float(a.max()), 3),
    }


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds used so far by each Python thread of this process (by name, numbered
    duplicates summed) and by all other threads together (``native``: ONNX Runtime's pool, Qt's
    own threads), from ``/proc/self/task``; empty where there is no such folder."""
    tick = os.sysconf("SC_CLK_TCK")
    names = {
        t.native_id: t.name.split("-")[0] if t.name.startswith("Thread-") else t.name
        for t in threading.enumerate()
    }
    out: dict[str, float] = {}
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        name = names.get(int(tid), "native")
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def bench(app: QApplication, args: argparse.Namespace, options: StationOptions) -> int:
    """Cycle p99 with the GUI attached against detached, alternating blocks in one run."""
    if options.plc is None:
        options = StationOptions(**{**options.__dict__, "plc": "none"})  # as `aoi bench`
    times: list[float] = []

    def record(r: InspectionResult) -> None:
        if r.frame_id >= 0:
            times.append(r.cycle_ms)

    n, blocks = args.bench, args.blocks
    sides: dict[str, list[float]] = {"detached": [], "attached": []}
    cpu: dict[str, dict[str, float]] = {"detached": {}, "attached": {}}
    with Gui(options, subscribers=[("bench", record)]) as gui:
        w, station = gui.window, gui.station
        assert w is not None
        if station.runner is None:
            print(f"error: {station.rig_error}")
            return 2
        w.resize(1366, 768)

        def block(attached: bool) -> None:
            gui.bridge.attached = attached
            if attached:
                w.show()
                w._refresh_timer.start(w.refresh_ms)
            else:
                w.hide()
                w._refresh_timer.stop()
                app.processEvents()
            before = len(times)
            cpu_before = thread_cpu_s()
            assert station.runner is not None
            station.runner.start(cycles=n)
            if attached:
                run_event_loop_until(lambda: station.runner.state is not RunState.RUNNING)
            else:
                station.runner.wait()
            deadline = time.monotonic() + 5
            while len(times) < before + n and time.monotonic() < deadline:
                time.sleep(0.01)
            if attached:
                app.processEvents()
            side = "attached" if attached else "detached"
            sides[side].extend(times[before:])
            for name, used in thread_cpu_s().items():
                cpu[side][name] = cpu[side].get(name, 0.0) + used - cpu_before.get(name, 0.0)

        load_before = os.getloadavg()[0]
        block(False)  # warm-up, not counted
        sides["detached"].clear()
        cpu["detached"].clear()
        for pair in range(blocks):
            # ABBA order: neither side always follows the other (archive backlog, drift).
            first = pair % 2 == 1
            block(attached=first)
            block(attached=not first)
        load_after = os.getloadavg()[0]
        shown = gui.bridge.taken
    summary: dict[str, Any] = {side: _percentiles(v) for side, v in sides.items()}
    summary["p99_ratio"] = round(summary["attached"]["p99"] / summary["detached"]["p99"], 4)
    summary["p50_ratio"] = round(summary["attached"]["p50"] / summary["detached"]["p50"], 4)
    summary["cpu_s_by_thread"] = {
        side: {k: round(v, 2) for k, v in sorted(c.items(), key=lambda kv: -kv[1]) if v >= 0.01}
        for side, c in cpu.items()
    }
    summary.update(
        boards_per_block=n,
        blocks_per_side=blocks,
        frames_shown=shown,
        recipe=options.recipe,
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs",
        load_average=[round(load_before, 2), round(load_after, 2)],
        date=datetime.now(UTC).strftime("%Y-%m-%d"),
    )
    for side in ("detached", "attached"):
        s = summary[side]
        print(
            f"GUI {side:<9} boards {s['boards']:5d}  cycle p50 {s['p50']:7.2f}  "
            f"p99 {s['p99']:7.2f}  max {s['max']:7.2f} ms"
        )
    print(
        f"p99 attached/detached {summary['p99_ratio']:.3f}  "
        f"(p50 {summary['p50_ratio']:.3f}); display frames shown {shown}; "
        f"load average {load_before:.1f} -> {load_after:.1f}"
    )
    for side in ("detached", "attached"):
        used = ", ".join(f"{k} {v:.1f}" for k, v in summary["cpu_s_by_thread"][side].items())
        print(f"CPU seconds {side:<9} {used}")
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    return 0
