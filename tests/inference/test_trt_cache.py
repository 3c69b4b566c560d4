"""The engine cache without TensorRT: keys, and when a cached engine may be loaded.

The "engines" here are byte strings written by the cache itself: these tests check the cache's
bookkeeping (keys, sidecars, digests), not TensorRT, and never claim an engine works.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path

import pytest

from aoi.inference.tensorrt.cache import (
    CACHE_FORMAT,
    EngineKey,
    calibration_cache_path,
    decide,
    default_engine_dir,
    engine_paths,
    list_engines,
    timing_cache_path,
    write_engine,
)
from aoi.inference.tensorrt.plan import ProfileShapes

PROFILE = ProfileShapes((1, 2, 512, 512), (1, 2, 640, 640), (1, 2, 768, 768))
KEY = EngineKey(
    model_sha256="a" * 64,
    tensorrt_version="10.16.1.11",
    gpu_name="NVIDIA H100 80GB HBM3",
    compute_capability="9.0",
    precision="fp16",
    profile=PROFILE,
)
MODEL = Path("models/aoi-defect-v1.onnx")

CHANGES = {
    "model_sha256": "b" * 64,
    "tensorrt_version": "10.3.0.26",
    "gpu_name": "NVIDIA RTX A4000",
    "compute_capability": "8.6",
    "precision": "int8",
    "profile": ProfileShapes((1, 2, 512, 512), (1, 2, 640, 640), (1, 2, 1024, 1024)),
    "calibration": "c" * 64,
}


def test_same_inputs_give_the_same_key() -> None:
    twin = EngineKey(**{f.name: getattr(KEY, f.name) for f in dataclasses.fields(KEY)})
    assert twin.digest() == KEY.digest()
    assert len(KEY.digest()) == 64


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_every_component_changes_the_key(field: str) -> None:
    changed = dataclasses.replace(KEY, **{field: CHANGES[field]})
    assert changed.digest() != KEY.digest()
    assert (
        engine_paths(Path("c"), MODEL, changed).engine != engine_paths(Path("c"), MODEL, KEY).engine
    )


@pytest.mark.parametrize("corner", ["min", "opt", "max"])
@pytest.mark.parametrize("axis", [0, 2, 3])
def test_every_profile_dimension_changes_the_key(corner: str, axis: int) -> None:
    shape = list(getattr(PROFILE, corner))
    shape[axis] += 16
    profile = dataclasses.replace(PROFILE, **{corner: tuple(shape)})
    assert dataclasses.replace(KEY, profile=profile).digest() != KEY.digest()


def test_file_names_carry_model_precision_and_key(tmp_path: Path) -> None:
    paths = engine_paths(tmp_path, MODEL, KEY)
    assert paths.engine.name == f"aoi-defect-v1-fp16-{KEY.digest()[:24]}.engine"
    assert paths.sidecar == paths.engine.with_suffix(".json")
    timing = timing_cache_path(tmp_path, "10.16.1.11", "NVIDIA H100 80GB HBM3", "9.0")
    assert timing.name == "timing-trt10.16.1.11-NVIDIA_H100_80GB_HBM3-sm9.0.cache"
    assert calibration_cache_path(tmp_path, KEY).name.startswith(
        "calibration-aaaaaaaaaaaaaaaa-trt10"
    )


def _stored(tmp_path: Path, key: EngineKey = KEY, data: bytes = b"plan-bytes" * 100) -> Path:
    paths = engine_paths(tmp_path, MODEL, key)
    write_engine(paths, key, data, {"build_seconds": 1.0})
    return paths.sidecar


def test_no_engine_means_build_without_warning(tmp_path: Path) -> None:
    decision = decide(engine_paths(tmp_path, MODEL, KEY), KEY)
    assert (decision.load, decision.warn) == (False, False)
    assert "no engine built yet" in decision.reason


def test_a_current_engine_is_loaded(tmp_path: Path) -> None:
    _stored(tmp_path)
    decision = decide(engine_paths(tmp_path, MODEL, KEY), KEY)
    assert decision.load, decision.reason
    sidecar = json.loads(engine_paths(tmp_path, MODEL, KEY).sidecar.read_text())
    assert sidecar["cache_format"] == CACHE_FORMAT
    assert sidecar["components"]["gpu_name"] == "NVIDIA H100 80GB HBM3"


@pytest.mark.parametrize(
    ("field", "found"),
    [
        ("gpu_name", "'NVIDIA RTX A4000'"),
        ("compute_capability", "'8.6'"),
        ("tensorrt_version", "'10.3.0.26'"),
        ("model_sha256", "'bbbb"),
    ],
)
def test_a_foreign_or_stale_engine_is_rebuilt_never_loaded(
    tmp_path: Path, field: str, found: str
) -> None:
    """An engine copied in under this key's name, but built for something else."""
    other = dataclasses.replace(KEY, **{field: CHANGES[field]})
    other_paths = engine_paths(tmp_path, MODEL, other)
    write_engine(other_paths, other, b"foreign", {})
    mine = engine_paths(tmp_path, MODEL, KEY)
    other_paths.engine.rename(mine.engine)
    other_paths.sidecar.rename(mine.sidecar)
    decision = decide(mine, KEY)
    assert not decision.load
    assert decision.warn
    assert "built for another setup, never loaded" in decision.reason
    assert f"{field}: expected " in decision.reason
    assert f"found {found}" in decision.reason


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda s: s.write_text("{not json", encoding="utf-8"), "corrupt sidecar: cannot read it"),
        (lambda s: s.write_text("[1, 2]", encoding="utf-8"), "expected a JSON object, found list"),
        (lambda s: s.unlink(), "sidecar .* is missing"),
        (
            lambda s: s.write_text(
                s.read_text().replace('"engine_bytes"', '"engine_size"'), encoding="utf-8"
            ),
            "engine_bytes and engine_sha256 must be set, found None",
        ),
        (
            lambda s: s.write_text(
                s.read_text().replace('"precision": "fp16"', '"precision": 16'), encoding="utf-8"
            ),
            "components.precision must be a string, found 16",
        ),
        (
            lambda s: s.write_text(s.read_text().replace("512", '"512"', 1), encoding="utf-8"),
            "a profile shape must be 4 integers",
        ),
        (
            lambda s: s.with_suffix(".engine").write_bytes(b"truncated"),
            "corrupt engine file: expected 1000 bytes, found 9",
        ),
        (
            lambda s: s.with_suffix(".engine").write_bytes(b"X" * 1000),
            "corrupt engine file: sha256 expected",
        ),
    ],
)
def test_a_corrupt_cache_entry_is_rebuilt_with_a_warning(
    tmp_path: Path, damage: object, reason: str
) -> None:
    sidecar = _stored(tmp_path)
    damage(sidecar)  # type: ignore[operator]
    decision = decide(engine_paths(tmp_path, MODEL, KEY), KEY)
    assert (decision.load, decision.warn) == (False, True)
    assert re.search(reason, decision.reason), decision.reason


def test_an_older_cache_format_is_rebuilt(tmp_path: Path) -> None:
    sidecar = _stored(tmp_path)
    raw = json.loads(sidecar.read_text())
    raw["cache_format"] = CACHE_FORMAT - 1
    sidecar.write_text(json.dumps(raw), encoding="utf-8")
    decision = decide(engine_paths(tmp_path, MODEL, KEY), KEY)
    assert not decision.load
    assert f"cache_format must be {CACHE_FORMAT}, found {CACHE_FORMAT - 1}" in decision.reason


def test_rewriting_an_engine_leaves_no_stale_sidecar_or_temp_file(tmp_path: Path) -> None:
    _stored(tmp_path, data=b"old")
    _stored(tmp_path, data=b"new plan")
    assert decide(engine_paths(tmp_path, MODEL, KEY), KEY).load
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".engine", ".json"]


def test_list_engines_reports_what_sidecars_say(tmp_path: Path) -> None:
    assert list_engines(tmp_path / "none") == []
    _stored(tmp_path)
    other = dataclasses.replace(KEY, precision="fp32")
    engine_paths(tmp_path, MODEL, other).engine.write_bytes(b"orphan")
    found = list_engines(tmp_path)
    assert len(found) == 2
    by_precision = {e.path.name.split("-")[3]: e for e in found}
    assert by_precision["fp16"].components is not None
    assert by_precision["fp32"].components is None


def test_default_engine_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AOI_ENGINE_DIR", str(tmp_path / "e"))
    assert default_engine_dir() == tmp_path / "e"
    monkeypatch.delenv("AOI_ENGINE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_engine_dir() == tmp_path / "cache" / "aoi" / "engines"


def test_the_cache_logs_nothing_on_a_clean_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _stored(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert decide(engine_paths(tmp_path, MODEL, KEY), KEY).load
    assert caplog.records == []
