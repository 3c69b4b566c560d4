"""What the screens are built on, without a screen: accounts, lights, edits, crops, frames."""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from aoi.errors import RecipeError
from aoi.storage import HealthSnapshot
from aoi.types import Defect, Defects, ErrorKind, InspectionResult, Registration, Verdict
from plc.link import LinkHealth
from plc.peer import LinkState
from plc.registers import ErrorCode
from ui.bridge import DISPLAY_MAX_PX, ResultBridge, prepare
from ui.logic.health import Level, camera_light, database_light, engine_light, plc_light
from ui.logic.recipe_edit import changes, read_raw, save_new_version, set_path, validate
from ui.logic.review_data import crop_pair, template_to_frame
from ui.logic.users import Role, UserError, UserStore

RecipeFactory = Callable[..., Path]

# -- accounts --


def test_pins_are_salted_hashes_and_the_last_admin_stays(tmp_path: Path) -> None:
    store = UserStore.in_folder(tmp_path)
    assert not store.has_admin()
    store.add("chief", Role.ADMIN, "1234")
    store.add("anna", Role.OPERATOR, "1234")
    raw = json.loads((tmp_path / "users.json").read_text())["users"]
    assert "1234" not in json.dumps(raw)
    assert raw[0]["salt"] != raw[1]["salt"] and raw[0]["hash"] != raw[1]["hash"]
    assert (tmp_path / "users.json").stat().st_mode & 0o077 == 0, "readable by the station only"
    assert store.authenticate("anna", "1234") is not None
    assert store.authenticate("anna", "4321") is None
    assert store.authenticate("nobody", "1234") is None
    with pytest.raises(UserError, match="last admin"):
        store.set_role("chief", Role.ENGINEER)
    with pytest.raises(UserError, match="last admin"):
        store.remove("chief")
    with pytest.raises(UserError, match="at least 4"):
        store.add("ben", Role.ENGINEER, "12")
    with pytest.raises(UserError, match="exists already"):
        store.add("anna", Role.OPERATOR, "9999")
    assert store.set_role("anna", Role.ENGINEER) is Role.OPERATOR
    assert [u.name for u in store.users()] == ["chief", "anna"]


# -- health lights --


def _link(**kw: object) -> LinkHealth:
    base: dict[str, object] = {
        "state": LinkState.UP,
        "ready": True,
        "error_code": ErrorCode.NONE,
        "error_message": "",
        "plc_alive": True,
        "active_recipe": 101,
        "triggers": 5,
        "accepted": 5,
        "missed": 0,
        "acked": 5,
        "stale_results": 0,
        "timeouts": 0,
    }
    return LinkHealth(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("health", "running", "level", "summary"),
    [
        (None, False, Level.OFF, "No PLC"),
        (_link(), True, Level.OK, "Online"),
        (_link(), False, Level.OK, "Connected, offline"),
        (_link(state=LinkState.CONNECTING), True, Level.WARN, "Connecting"),
        (_link(plc_alive=False), True, Level.WARN, "Waiting for PLC"),
        (
            _link(state=LinkState.DOWN, error_message="connection refused"),
            True,
            Level.FAULT,
            "Link down",
        ),
        (
            _link(error_code=ErrorCode.PLC_HEARTBEAT_LOST, plc_alive=False),
            True,
            Level.FAULT,
            "PLC not answering",
        ),
        (
            _link(error_code=ErrorCode.RESULT_ACK_TIMEOUT),
            True,
            Level.FAULT,
            "Error result ack timeout",
        ),
    ],
)
def test_plc_light(health: LinkHealth | None, running: bool, level: Level, summary: str) -> None:
    light = plc_light("tcp://10.0.0.5:502", health, address="10.0.0.5:502", running=running)
    assert (light.level, light.summary) == (level, summary)
    if level is Level.FAULT:
        assert light.action, "a red light says what to do"
    if health is not None and health.state is LinkState.DOWN:
        assert "connection refused" in light.cause and "10.0.0.5:502" in light.cause


def _result(
    verdict: Verdict,
    error: str = "",
    frame: bool = True,
    kind: ErrorKind = ErrorKind.NONE,
) -> InspectionResult:
    from aoi.types import Frame

    f = Frame(np.zeros((32, 32), np.uint8), 0, 0, "synthetic") if frame else None
    one = [Defect(1, "open", (0, 0, 4, 4), 16, 0.9)] if verdict is Verdict.NG else []
    defects = Defects.from_items(one)
    return InspectionResult(
        1,
        0 if frame else -1,
        "b",
        "r",
        "h",
        "m",
        "cpu",
        verdict,
        defects,
        Defects.empty(),
        {},
        5.0,
        False,
        None,
        error=error,
        error_kind=kind,
        frame=f,
    )


def test_camera_engine_and_database_lights() -> None:
    assert camera_light("").level is Level.OFF
    assert camera_light("cam", open_error="no camera found").level is Level.FAULT
    timeout = _result(
        Verdict.ERROR, "no frame within 2 s", frame=False, kind=ErrorKind.CAMERA_TIMEOUT
    )
    assert camera_light("cam", last=timeout).summary == "No image"
    assert engine_light("cpu", last=timeout).level is Level.OK
    # A frame the recipe cannot use is the camera's, even when the source delivered one.
    wrong_size = _result(Verdict.ERROR, "frame must be 640x640 px", kind=ErrorKind.BAD_FRAME)
    assert camera_light("cam", last=wrong_size).summary == "Bad image"
    assert engine_light("cpu", last=wrong_size).level is Level.OK
    assert camera_light("cam", warnings=("Gain: no such node",)).level is Level.WARN
    assert camera_light("cam", last=_result(Verdict.OK)).level is Level.OK
    assert engine_light("", open_error="model missing").summary == "Not loaded"
    failed = _result(
        Verdict.ERROR,
        "registration correlation must be >= 0.60, got 0.2",
        kind=ErrorKind.REGISTRATION,
    )
    assert engine_light("cpu", last=failed).summary == "Board not inspected"
    assert camera_light("cam", last=failed).level is Level.OK
    snap = HealthSnapshot(
        "sqlite:///x.db", (), 10, 10, 0, 1, 0, 0, 0, 0, 0, None, "", 0, 0, 0, 0, None
    )
    assert database_light(snap).level is Level.OK
    down = HealthSnapshot(
        "sqlite:///x.db",
        ("database x unavailable",),
        10,
        2,
        0,
        1,
        3,
        0,
        0,
        0,
        0,
        None,
        "locked",
        0,
        0,
        0,
        0,
        None,
    )
    light = database_light(down)
    assert light.level is Level.WARN and "unavailable" in light.cause and light.action


# -- recipe edits --


def test_save_new_version_keeps_history_and_lists_changes(make_recipe: RecipeFactory) -> None:
    path = make_recipe()
    raw = read_raw(path)
    set_path(raw, "classes.spurious_copper.score", 0.7)
    set_path(raw, "classes.open.min_area_px", 30)
    raw["masks"] = [{"x0": 0, "y0": 0, "x1": 10, "y1": 10, "note": "fiducial"}]
    assert validate(raw, str(path)).ok
    saved = save_new_version(path, raw, 1)
    assert saved.loaded.recipe.version == 2
    assert (path.parent / "history" / f"{path.stem}.v1.toml").read_text() != path.read_text()
    fields = {c[0]: c[1:] for c in changes(tomllib.loads(saved.previous.read_text()), raw)}
    assert fields["classes.spurious_copper.score"] == ("0.5", "0.7")
    assert fields["classes.open.min_area_px"] == (None, "30")
    assert fields["masks"][0] is None and "fiducial" in (fields["masks"][1] or "")
    with pytest.raises(RecipeError, match="changed on disk meanwhile"):
        save_new_version(path, raw, 1)  # someone else's edit of version 1 is stale now


def test_validation_names_the_field(make_recipe: RecipeFactory) -> None:
    path = make_recipe()
    raw = read_raw(path)
    set_path(raw, "geometry.profile.max.batch", 0)
    v = validate(raw, str(path))
    assert not v.ok and "geometry.profile.max.batch" in v.fields
    assert v.messages[0].startswith(f"{path}: geometry.profile.max.batch")


# -- review crops and display frames --


def test_stored_registration_rebuilds_the_cycle_transform() -> None:
    a = math.radians(-0.7)
    warp = np.array([[math.cos(a), -math.sin(a), 3.0], [math.sin(a), math.cos(a), -2.0]])
    w, h = 640, 480
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    moved = warp[:, :2] @ centre + warp[:, 2]
    stored = {
        "shift_x_px": moved[0] - centre[0],
        "shift_y_px": moved[1] - centre[1],
        "rotation_deg": math.degrees(math.atan2(warp[0, 1], warp[0, 0])),
    }
    assert np.allclose(template_to_frame(stored, w, h), warp, atol=1e-9)
    assert np.allclose(template_to_frame(None, w, h), np.eye(2, 3))


def test_crop_pair_is_the_same_window_of_board_and_template() -> None:
    board = np.arange(200 * 300, dtype=np.uint32).reshape(200, 300).astype(np.uint8)
    template = board.copy()
    pair = crop_pair(board, template, (290, 190, 299, 199))  # at the corner: stays inside
    assert pair.board.shape == pair.template.shape == (72, 72)
    assert np.array_equal(pair.board, pair.template)
    x0, y0, x1, y1 = pair.box
    assert (x1 - x0, y1 - y0) == (9, 9) and x1 <= 72 and y1 <= 72


def test_large_frames_are_shrunk_for_display_with_their_boxes() -> None:
    from aoi.types import Frame

    image = np.zeros((3000, 4096), np.uint16)
    frame = Frame(image, 7, 0, "genicam")
    defect = Defect(2, "short", (4000, 2900, 4090, 2990), 100, 0.8)
    reg = Registration(np.array([[1, 0, 5.0], [0, 1, 0.0]], np.float32), 5, 0, 0, 0.9, 1)
    result = InspectionResult(
        1,
        7,
        "f",
        "r",
        "h",
        "m",
        "cpu",
        Verdict.NG,
        Defects.from_items([defect]),
        Defects.empty(),
        {},
        40.0,
        False,
        reg,
        frame=frame,
    )
    shown = prepare(result)
    assert shown.image is not None and max(shown.image.shape) == DISPLAY_MAX_PX
    assert shown.image.dtype == np.uint8
    s = DISPLAY_MAX_PX / 4096
    box = shown.boxes[0]
    assert box.x0 == pytest.approx(4005 * s) and box.y1 == pytest.approx(2990 * s)


def test_the_bridge_prepares_only_what_the_screen_takes(qapp: object) -> None:
    import time

    def until(check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 30
        while not check() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert check()

    with ResultBridge() as bridge:
        bridge.on_result(_result(Verdict.OK))
        until(lambda: bridge.prepared == 1)  # in the slot, waiting for the screen
        for verdict in (Verdict.OK, Verdict.OK, Verdict.NG):
            bridge.on_result(_result(verdict))
        time.sleep(0.05)
        assert bridge.prepared == 1, "nothing is scaled while the screen is busy"
        first = bridge.take()
        assert first is not None and first.result.verdict is Verdict.OK
        until(lambda: bridge.prepared == 2)
        newest = bridge.take()
        assert newest is not None and newest.result.verdict is Verdict.NG
        assert (bridge.received, bridge.taken, bridge.skipped) == (4, 2, 2)
        bridge.attached = False
        bridge.on_result(_result(Verdict.OK))
        time.sleep(0.05)
        assert bridge.take() is None and bridge.received == 4


@pytest.mark.parametrize(
    ("top", "ticks"),
    [(62.5, [0, 20, 40, 60]), (180, [0, 50, 100, 150]), (12, [0, 5, 10]), (5000, [0, 2000, 4000])],
)
def test_cycle_chart_ticks_are_round_numbers(top: float, ticks: list[float]) -> None:
    from ui.widgets import nice_ticks

    assert nice_ticks(top) == ticks


@pytest.mark.parametrize(
    ("exists", "age_s", "says"),
    [
        (True, 3600, "not readable (yet)"),  # there, but not an image (or being written)
        (False, 5, "not readable (yet)"),  # the archive's queue may still hold it
        (False, 61, "not in the archive: it was dropped"),
        (False, 86_400, "not in the archive: it was dropped"),
    ],
)
def test_the_review_screen_tells_a_late_image_from_a_dropped_one(
    tmp_path: Path, exists: bool, age_s: int, says: str
) -> None:
    from datetime import UTC, datetime, timedelta

    from ui.logic.review_data import unreadable_image_note

    path = tmp_path / "board.png"
    if exists:
        path.write_bytes(b"not a png")
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert says in unreadable_image_note(path, now - timedelta(seconds=age_s), now)
