"""The engine cache: which serialized TensorRT engine may be loaded, and which must be rebuilt.

An engine is only valid for the exact model, TensorRT version, GPU (name and compute capability),
precision, optimisation profile and, for INT8, calibration data it was built from. Those make up
the :class:`EngineKey`; its SHA-256 names the file, and a JSON sidecar beside the engine records
the key's components and the engine file's own digest. :func:`decide` reads both and answers
"load" or "build, because ...": a stale or foreign engine is rebuilt, never loaded; a corrupt one
is rebuilt with a warning. Plain Python, no TensorRT import: unit-tested anywhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aoi.inference.tensorrt.plan import ProfileShapes

log = logging.getLogger(__name__)

#: Bumped when the key's meaning or the sidecar's layout changes: every old engine is rebuilt.
CACHE_FORMAT = 2
ENGINE_SUFFIX = ".engine"
SIDECAR_SUFFIX = ".json"


class SidecarError(Exception):
    """A sidecar that cannot be read or does not describe an engine (the message says why)."""


def default_engine_dir() -> Path:
    """Where engines go when the station config names no folder (``AOI_ENGINE_DIR`` overrides).

    Engines are a cache, regenerated from the ONNX model at will, so they live in the user's cache
    folder (``~/.cache/aoi/engines``, ``%LOCALAPPDATA%\\aoi\\cache\\engines``), not beside data.
    """
    if env := os.environ.get("AOI_ENGINE_DIR"):
        return Path(env)
    if sys.platform == "win32" and (local := os.environ.get("LOCALAPPDATA")):
        return Path(local) / "aoi" / "cache" / "engines"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "aoi" / "engines"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialized engine depends on; two equal keys mean one interchangeable engine."""

    model_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    profile: ProfileShapes
    #: Digest of the INT8 calibration inputs (images, template, registration); "" otherwise.
    calibration: str = ""

    def components(self) -> dict[str, Any]:
        return {
            "model_sha256": self.model_sha256,
            "tensorrt_version": self.tensorrt_version,
            "gpu_name": self.gpu_name,
            "compute_capability": self.compute_capability,
            "precision": self.precision,
            "profile": self.profile.as_dict(),
            "calibration": self.calibration,
        }

    def digest(self) -> str:
        content = {"cache_format": CACHE_FORMAT, **self.components()}
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _shape(value: Any) -> tuple[int, int, int, int]:
    if not (isinstance(value, list) and len(value) == 4 and all(type(v) is int for v in value)):
        msg = f"a profile shape must be 4 integers, found {value!r}"
        raise SidecarError(msg)
    return (value[0], value[1], value[2], value[3])


def key_from_components(found: dict[str, Any]) -> EngineKey:
    """The key a sidecar describes; :class:`SidecarError` naming the field when malformed."""
    strings = ("model_sha256", "tensorrt_version", "gpu_name", "compute_capability", "precision")
    for field in (*strings, "calibration"):
        if not isinstance(found.get(field), str):
            msg = f"components.{field} must be a string, found {found.get(field)!r}"
            raise SidecarError(msg)
    profile = found.get("profile")
    if not isinstance(profile, dict):
        msg = f"components.profile must be an object, found {profile!r}"
        raise SidecarError(msg)
    shapes = ProfileShapes(
        _shape(profile.get("min")), _shape(profile.get("opt")), _shape(profile.get("max"))
    )
    return EngineKey(*(found[f] for f in strings), profile=shapes, calibration=found["calibration"])


@dataclass(frozen=True)
class EnginePaths:
    engine: Path
    sidecar: Path


def engine_paths(folder: Path, model_path: Path, key: EngineKey) -> EnginePaths:
    """``<folder>/<model>-<precision>-<key digest>.engine`` and its ``.json`` sidecar.

    Recipes with the same model, precision, profile and calibration share one engine file.
    """
    stem = f"{_slug(model_path.stem)}-{key.precision}-{key.digest()[:24]}"
    return EnginePaths(folder / f"{stem}{ENGINE_SUFFIX}", folder / f"{stem}{SIDECAR_SUFFIX}")


def timing_cache_path(folder: Path, tensorrt_version: str, gpu_name: str, cc: str) -> Path:
    """The builder's persistent timing cache: one per TensorRT version and GPU model."""
    return folder / f"timing-trt{_slug(tensorrt_version)}-{_slug(gpu_name)}-sm{_slug(cc)}.cache"


def calibration_cache_path(folder: Path, key: EngineKey) -> Path:
    """The INT8 calibration cache (scales per tensor) for one model, TensorRT and data set."""
    head = f"{key.model_sha256[:16]}-trt{_slug(key.tensorrt_version)}-{key.calibration[:16]}"
    return folder / f"calibration-{head}.cache"


@dataclass(frozen=True)
class CacheDecision:
    """Whether the cached engine may be loaded; if not, why (``warn``: something was wrong)."""

    load: bool
    reason: str
    warn: bool = False


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_sidecar(path: Path) -> dict[str, Any]:
    """The sidecar's JSON object; :class:`SidecarError` with the reason when not usable."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        msg = f"cannot read it ({err})"
        raise SidecarError(msg) from err
    if not isinstance(raw, dict):
        msg = f"expected a JSON object, found {type(raw).__name__}"
        raise SidecarError(msg)
    return raw


def parse_sidecar(raw: dict[str, Any]) -> tuple[EngineKey, int, str]:
    """The key, engine size and engine SHA-256 a sidecar records."""
    components = raw.get("components")
    if not isinstance(components, dict):
        msg = f"components must be an object, found {components!r}"
        raise SidecarError(msg)
    key = key_from_components(components)
    size, digest = raw.get("engine_bytes"), raw.get("engine_sha256")
    if type(size) is not int or not isinstance(digest, str):
        msg = f"engine_bytes and engine_sha256 must be set, found {size!r} and {digest!r}"
        raise SidecarError(msg)
    return key, size, digest


def _differences(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    return [
        f"{field}: expected {expected[field]!r}, found {found.get(field)!r}"
        for field in expected
        if found.get(field) != expected[field]
    ]


def decide(paths: EnginePaths, expected: EngineKey) -> CacheDecision:
    """Load the cached engine only if its sidecar proves it was built for ``expected``."""
    engine, sidecar = paths.engine, paths.sidecar
    if not engine.is_file():
        return CacheDecision(False, f"no engine built yet for this key ({engine.name})")
    if not sidecar.is_file():
        return CacheDecision(
            False,
            f"{engine}: sidecar {sidecar.name} is missing; an engine of unknown origin is "
            "never loaded",
            warn=True,
        )
    try:
        raw = read_sidecar(sidecar)
        if raw.get("cache_format") != CACHE_FORMAT:
            return CacheDecision(
                False,
                f"{sidecar}: cache_format must be {CACHE_FORMAT}, found "
                f"{raw.get('cache_format')!r} (written by another station version)",
            )
        found_key, size, digest = parse_sidecar(raw)
    except SidecarError as err:
        return CacheDecision(False, f"{sidecar}: corrupt sidecar: {err}", warn=True)
    diffs = _differences(expected.components(), found_key.components())
    if diffs:
        return CacheDecision(
            False,
            f"{engine}: built for another setup, never loaded: " + "; ".join(diffs),
            warn=True,
        )
    if raw.get("key") != expected.digest():
        return CacheDecision(
            False,
            f"{sidecar}: key must be {expected.digest()}, found {raw.get('key')!r}",
            warn=True,
        )
    actual_size = engine.stat().st_size
    if actual_size != size:
        return CacheDecision(
            False,
            f"{engine}: corrupt engine file: expected {size} bytes, found {actual_size}",
            warn=True,
        )
    actual_digest = file_sha256(engine)
    if actual_digest != digest:
        return CacheDecision(
            False,
            f"{engine}: corrupt engine file: sha256 expected {digest}, found {actual_digest}",
            warn=True,
        )
    return CacheDecision(True, f"cached engine {engine.name} matches")


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_engine(paths: EnginePaths, key: EngineKey, engine: bytes, info: dict[str, Any]) -> None:
    """Store a freshly built engine, then its sidecar (a crash in between leaves no sidecar,
    which :func:`decide` treats as a rebuild)."""
    paths.sidecar.unlink(missing_ok=True)
    atomic_write(paths.engine, engine)
    sidecar = {
        "cache_format": CACHE_FORMAT,
        "key": key.digest(),
        "components": key.components(),
        "engine_bytes": len(engine),
        "engine_sha256": hashlib.sha256(engine).hexdigest(),
        **info,
    }
    atomic_write(paths.sidecar, (json.dumps(sidecar, indent=2, sort_keys=True) + "\n").encode())


@dataclass(frozen=True)
class CachedEngine:
    path: Path
    size_bytes: int
    components: dict[str, Any] | None


def list_engines(folder: Path) -> list[CachedEngine]:
    """The engines in a cache folder with what their sidecars say (None where unreadable)."""
    if not folder.is_dir():
        return []
    out = []
    for engine in sorted(folder.glob(f"*{ENGINE_SUFFIX}")):
        components: dict[str, Any] | None = None
        try:
            found = read_sidecar(engine.with_suffix(SIDECAR_SUFFIX)).get("components")
            components = found if isinstance(found, dict) else None
        except SidecarError:
            components = None
        out.append(CachedEngine(engine, engine.stat().st_size, components))
    return out
