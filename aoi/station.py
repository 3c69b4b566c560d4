"""Station configuration: the hardware and site settings of one station (TOML).

A recipe says how to inspect a product; the station config says what this PC is wired to:
the GenTL producers and camera, the inference backend, and where data goes. Every field has a
default so a station with no file runs the embedded default (synthetic boards, CPU, no PLC).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aoi.errors import StationConfigError
from aoi.recipe import format_validation_error


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraConfig(_Strict):
    #: GenTL producer files; empty means every ``*.cti`` in GENICAM_GENTL64_PATH.
    cti_paths: list[Path] = Field(default_factory=list)
    #: Serial number, user-defined name or model of the camera; empty means the first found.
    device: str = ""
    fetch_timeout_s: float = Field(default=2.0, gt=0, le=60)


class InferenceConfig(_Strict):
    backend: Literal["auto", "onnxruntime", "onnxruntime-cuda"] = "auto"
    #: CPU threads for ONNX Runtime; 0 lets it choose (all cores).
    threads: int = Field(default=0, ge=0, le=256)


class StationConfig(_Strict):
    station_id: str = Field(default="station-1", min_length=1, max_length=64)
    camera: CameraConfig = CameraConfig()
    inference: InferenceConfig = InferenceConfig()


def load_station_config(path: str | Path | None) -> StationConfig:
    """The station config from ``path``, or the defaults when ``path`` is None."""
    if path is None:
        return StationConfig()
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        msg = f"{path}: station config file not found"
        raise StationConfigError(msg) from err
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        msg = f"{path}: cannot read station config ({err})"
        raise StationConfigError(msg) from err
    try:
        config = StationConfig.model_validate(raw)
    except ValidationError as err:
        raise StationConfigError(format_validation_error(str(path), err)) from err
    base = path.resolve().parent
    paths = [p if p.is_absolute() else base / p for p in config.camera.cti_paths]
    camera = config.camera.model_copy(update={"cti_paths": paths})
    return config.model_copy(update={"camera": camera})
