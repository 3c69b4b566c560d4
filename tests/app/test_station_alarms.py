"""The station's own parts raise and clear their alarms in the persisted history.

A replay folder with a cut-off image in the middle (a real unreadable file, not a stand-in)
makes the camera's "Unusable image" alarm rise and, with the next good image, clear.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2

from aoi.app.station import Station, StationOptions
from aoi.recipe import load_recipe
from aoi.storage.alarms import AlarmLog
from aoi.storage.db import Database


def test_an_unreadable_image_raises_the_camera_alarm_and_the_next_image_clears_it(
    make_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = make_recipe(registration="none")
    template = cv2.imread(str(load_recipe(recipe).template_path), cv2.IMREAD_GRAYSCALE)
    ok, png = cv2.imencode(".png", template)
    assert ok
    data = png.tobytes()
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "1_whole.png").write_bytes(data)
    (folder / "2_cut.png").write_bytes(data[: int(len(data) * 0.85)])
    (folder / "3_whole.png").write_bytes(data)
    db_url = f"sqlite:///{tmp_path / 'aoi.db'}"
    options = StationOptions(
        recipe=str(recipe),
        source=f"replay:{folder}",
        plc=None,
        default_plc="none",
        db_url=db_url,
        data_dir=tmp_path / "data",
        threads=1,
    )
    with Station(options) as station:
        assert station.start("test", cycles=3)
        assert station.wait(60)
        station_id = station.config.station_id
    with Database(db_url) as db:
        history = AlarmLog(db, station_id).recent()
    camera = [r for r in history if r.source == "Camera"]
    assert [r.title for r in camera] == ["Unusable image"]
    assert "2_cut.png" in camera[0].cause
    assert camera[0].cleared_at is not None, "the next good image cleared it"
