"""GenICam cameras before a source opens them: GenTL producers, the device list, picking one.

Traps handled here:

- A GenTL producer can be opened once per process: a second ``Harvester`` on the same ``.cti``
  silently finds no device. Open sources claim their producers here, so that
  :func:`list_devices` answers from the open one and a second source on the same producer gets
  a clear error.
- Importing ``harvesters.core`` calls ``warnings.simplefilter("once")`` for the whole process; the
  import is fenced so the application's warning filters stay as they were. Every module of this
  package imports harvesters through this one.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aoi.errors import CameraError
from aoi.sources.genicam.nodes import GENICAM_ERRORS, short_error

with warnings.catch_warnings():
    from harvesters.core import Harvester, ImageAcquirer

if TYPE_CHECKING:
    from aoi.sources.genicam.source import GenICamSource

__all__ = [
    "GENTL_PATH_VAR",
    "SELECTOR_FIELDS",
    "Harvester",
    "ImageAcquirer",
    "claim_producers",
    "describe_device",
    "describe_info",
    "find_cti_files",
    "list_devices",
    "open_harvester",
    "release_producers",
    "select_device",
]

GENTL_PATH_VAR = "GENICAM_GENTL64_PATH"
#: Device-info fields a ``device`` selector is matched against, most specific first.
SELECTOR_FIELDS: tuple[str, ...] = ("serial_number", "user_defined_name", "id", "model")

#: Open sources and the (resolved) producers each holds.
_open_sources: list[tuple[GenICamSource, frozenset[Path]]] = []
_open_lock = threading.Lock()


def find_cti_files(cti_paths: Sequence[Path] | None = None) -> list[Path]:
    """The GenTL producers to load: the given files (or folders), else those on GENTL64_PATH."""
    if cti_paths:
        found: list[Path] = []
        for p in map(Path, cti_paths):
            if p.is_dir():
                found.extend(sorted(p.glob("*.cti")))
            elif p.is_file():
                found.append(p)
            else:
                msg = f"GenTL producer {p} not found; expected an existing .cti file or folder"
                raise CameraError(msg)
        if found:
            return found
        msg = f"no *.cti file in {[str(p) for p in cti_paths]}; expected a GenTL producer there"
        raise CameraError(msg)
    raw = os.environ.get(GENTL_PATH_VAR, "")
    folders = [Path(f) for f in raw.split(os.pathsep) if f]
    found = list(dict.fromkeys(c for f in folders if f.is_dir() for c in sorted(f.glob("*.cti"))))
    if not found:
        msg = (
            f"no GenTL producer (*.cti) found: the station config names none and "
            f"{GENTL_PATH_VAR}={raw!r} holds none (looked in {[str(f) for f in folders]}); "
            f"install the camera vendor's GenTL producer and point {GENTL_PATH_VAR} at its "
            f"folder, or list the .cti file in the station config"
        )
        raise CameraError(msg)
    return found


def describe_info(info: Any) -> dict[str, str]:
    """A harvesters DeviceInfo as plain strings ('' where the producer does not say)."""
    props = info.property_dict  # filled by harvesters, which catches NotAvailableException
    keys = (
        "serial_number",
        "user_defined_name",
        "id_",
        "model",
        "vendor",
        "display_name",
        "tl_type",
        "version",
    )
    return {k.rstrip("_"): "" if props.get(k) is None else str(props[k]) for k in keys}


def describe_device(device: dict[str, str]) -> str:
    """One line naming a device for messages: ``Viky serial 0 (VikyTL_DEV_red)``."""
    text = f"{device.get('model') or '?'} serial {device.get('serial_number') or '?'}"
    name = device.get("user_defined_name")
    return f"{text} '{name}' ({device.get('id')})" if name else f"{text} ({device.get('id')})"


@contextmanager
def open_harvester(ctis: Sequence[Path]) -> Iterator[Harvester]:
    """A Harvester with the producers loaded and the device list updated; reset on exit."""
    h = Harvester()
    try:
        try:
            for cti in ctis:
                h.add_file(str(cti))
            h.update()
        except GENICAM_ERRORS as err:
            msg = f"cannot load GenTL producers {[str(c) for c in ctis]}: {short_error(err)}"
            raise CameraError(msg) from err
        yield h
    finally:
        try:
            h.reset()
        except GENICAM_ERRORS as err:
            msg = f"resetting the Harvester of {[str(c) for c in ctis]} failed: {short_error(err)}"
            raise CameraError(msg) from err


def _active_for(ctis: Sequence[Path]) -> GenICamSource | None:
    """The open source holding one of these producers; call with ``_open_lock`` held."""
    wanted = {c.resolve() for c in ctis}
    return next((s for s, held in _open_sources if wanted & held), None)


def claim_producers(source: GenICamSource, ctis: Sequence[Path]) -> list[Path]:
    """Reserve the producers for ``source`` (resolved paths): a GenTL producer opens once."""
    with _open_lock:
        other = _active_for(ctis)
        if other is not None:
            msg = (
                f"GenTL producer {[str(c) for c in ctis]} is already open in this process "
                f"for camera {other.label}; expected it free: close that source first"
            )
            raise CameraError(msg)
        held = [c.resolve() for c in ctis]
        _open_sources.append((source, frozenset(held)))
    return held


def release_producers(source: GenICamSource) -> None:
    """Give back the producers ``source`` claimed (nothing if it holds none)."""
    with _open_lock:
        _open_sources[:] = [(s, held) for s, held in _open_sources if s is not source]


def list_devices(cti_paths: Sequence[Path] | None = None) -> list[dict[str, str]]:
    """Cameras the producers see, for ``aoi doctor`` and the GUI camera page.

    Each is a dict of strings: serial_number, user_defined_name, id, model, vendor, display_name,
    tl_type, version, and in_use ("open in this process" for the device a source holds). While a
    :class:`GenICamSource` holds the producer, the list it found on opening is returned.
    """
    ctis = find_cti_files(cti_paths)
    with _open_lock:
        active = _active_for(ctis)
        if active is not None:
            return [dict(d) for d in active.devices]
    with open_harvester(ctis) as h:
        return [{**describe_info(info), "in_use": ""} for info in h.device_info_list]


def select_device(devices: list[dict[str, str]], wanted: str | None, ctis: Sequence[Path]) -> int:
    """Index of the device ``wanted`` names (serial, user-defined name, id or model)."""
    if not devices:
        msg = (
            f"no camera found through {[str(c) for c in ctis]}: expected at least one; the "
            f"producer did not load (harvesters logs why) or no camera is connected and powered"
        )
        raise CameraError(msg)
    if wanted is None:
        return 0
    for field in SELECTOR_FIELDS:
        hits = [i for i, d in enumerate(devices) if d.get(field) == wanted]
        if len(hits) == 1:
            return hits[0]
        if hits:
            names = "; ".join(describe_device(devices[i]) for i in hits)
            msg = (
                f"camera {wanted!r} matches {len(hits)} devices by {field}: {names}; "
                f"expected exactly one, so choose it by serial number"
            )
            raise CameraError(msg)
    msg = (
        f"camera {wanted!r} not found; expected a serial number, user-defined name, device id "
        f"or model of one of the {len(devices)} device(s) found: "
        f"{'; '.join(describe_device(d) for d in devices)}"
    )
    raise CameraError(msg)
