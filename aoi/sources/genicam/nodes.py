"""A GenICam device's node map: read a node, set nodes, apply a recipe's camera settings.

A node the device lacks or a value it refuses is collected as one readable line, never raised:
the GUI and ``aoi doctor`` show the list. Needs the genicam bindings only, not harvesters.
"""

from __future__ import annotations

from typing import Any

from genicam import genapi, gentl

from aoi.recipe import CameraSettings

#: Exceptions the genicam bindings raise (harvesters lets them through).
GENICAM_ERRORS: tuple[type[Exception], ...] = (gentl.GenericException, genapi.GenericException)


def short_error(err: BaseException) -> str:
    """The useful head of a genicam message (it appends C++ file and line)."""
    return str(err).split(" : ")[0].strip()[:300]


_VALUE_KINDS: dict[type, str] = {
    genapi.IInteger: "an integer",
    genapi.IFloat: "a number",
    genapi.IBoolean: "a boolean",
    genapi.IEnumeration: "a string",
    genapi.IString: "a string",
}


def read_node(node_map: Any, name: str) -> object:
    """A node's value, or None if the device has no such readable value node."""
    node = node_map.get_node(name) if node_map.has_node(name) else None
    if not isinstance(node, tuple(_VALUE_KINDS)) or not genapi.is_readable(node):
        return None
    return node.value


class NodeWriter:
    """Sets nodes of a device's node map and collects, one line each, what could not be set."""

    def __init__(self, node_map: Any) -> None:
        self.node_map = node_map
        self.problems: list[str] = []

    def has(self, name: str) -> bool:
        return bool(self.node_map.has_node(name))

    def set(self, name: str, value: float | str | bool) -> str | None:
        """Set one node (a str goes through the node's own parser); None, or why not."""
        if not self.has(name):
            return f"{name}: the device has no such node; {value!r} not applied"
        node = self.node_map.get_node(name)
        kind = next((k for t, k in _VALUE_KINDS.items() if isinstance(node, t)), "")
        try:
            if isinstance(node, genapi.ICommand) and value is True:
                node.execute()
            elif isinstance(value, str) and kind:
                node.from_string(value)
            elif (
                isinstance(node, genapi.IInteger)
                and not isinstance(value, (bool, str))
                and (float(value).is_integer())
            ):
                node.value = int(value)
            elif isinstance(node, genapi.IFloat) and not isinstance(value, (bool, str)):
                node.value = float(value)
            elif isinstance(node, genapi.IBoolean) and value in (0, 1):
                node.value = bool(value)
            else:
                expected = "true (execute)" if isinstance(node, genapi.ICommand) else kind
                return f"{name}: expected {expected or 'a settable node'}, found {value!r}"
        except (*GENICAM_ERRORS, TypeError) as err:
            hint = ""
            if isinstance(node, genapi.IEnumeration):
                hint = f"; expected one of {list(node.symbolics)}"
            return f"{name}: the device refused {value!r} ({short_error(err)}{hint})"
        return None

    def put(self, name: str, value: float | str | bool, *, needed: bool = True) -> bool:
        """Set a node; a failure is a problem, a missing node only when ``needed``."""
        problem = self.set(name, value)
        if problem is not None and (needed or self.has(name)):
            self.problems.append(problem)
        return problem is None


def apply_settings(node_map: Any, s: CameraSettings) -> tuple[list[str], str]:
    """Apply a recipe's camera settings; returns what could not be applied and the trigger used.

    A node the device lacks or a value it refuses is reported, never raised: the GUI and
    ``aoi doctor`` show the list.
    """
    w = NodeWriter(node_map)
    w.put("PixelFormat", s.pixel_format)
    if s.roi_width_px or s.roi_height_px or s.roi_offset_x_px or s.roi_offset_y_px:
        for offset in ("OffsetX", "OffsetY"):  # to 0 first, so that the new size fits (SFNC)
            if w.has(offset):
                w.set(offset, 0)
        if s.roi_width_px is not None:
            w.put("Width", s.roi_width_px)
        if s.roi_height_px is not None:
            w.put("Height", s.roi_height_px)
        w.put("OffsetX", s.roi_offset_x_px, needed=s.roi_offset_x_px != 0)
        w.put("OffsetY", s.roi_offset_y_px, needed=s.roi_offset_y_px != 0)

    w.put("ExposureAuto", "Off", needed=False)
    exposure = next((n for n in ("ExposureTime", "ExposureTimeAbs") if w.has(n)), None)
    if exposure is not None:
        w.put(exposure, s.exposure_us)
    elif w.has("ExposureTimeRaw"):
        step_us = read_node(node_map, "ExposureTimeBaseAbs")  # µs per raw step, where given
        step = float(step_us) if isinstance(step_us, float | int) and step_us > 0 else 1.0
        w.put("ExposureTimeRaw", round(s.exposure_us / step))
    else:
        w.problems.append(
            f"ExposureTime: the device has no ExposureTime, ExposureTimeAbs or ExposureTimeRaw "
            f"node; {s.exposure_us:g} us not applied"
        )

    w.put("GainAuto", "Off", needed=False)
    if w.has("Gain"):
        w.put("Gain", s.gain_db)
    elif s.gain_db != 0:
        raw = " (it has GainRaw, in device units: set that under nodes)" if w.has("GainRaw") else ""
        w.problems.append(f"Gain: the device has no such node; {s.gain_db:g} dB not applied{raw}")

    trigger = _apply_trigger(w, s)
    for name, value in s.nodes.items():
        w.put(name, value)
    return w.problems, trigger


def _apply_trigger(w: NodeWriter, s: CameraSettings) -> str:
    """Set the trigger up; returns the one in effect ("software", "hardware" or "free_run").

    A software trigger the device cannot do falls back to free running (a grab still gets a
    fresh frame). A hardware trigger is never replaced by free running: a wrong line then shows
    as timeouts, not as frames taken when no board is there.
    """
    if s.trigger_mode == "free_run":
        w.put("TriggerMode", "Off", needed=False)
        return "free_run"
    if not w.has("TriggerMode"):
        w.problems.append(
            f"TriggerMode: the device has no such node; it free-runs, so each grab takes its "
            f"next frame instead of a {s.trigger_mode}-triggered one"
        )
        return "free_run"
    w.put("TriggerSelector", "FrameStart", needed=False)
    source = "Software" if s.trigger_mode == "software" else s.trigger_source
    ok = w.put("TriggerMode", "On")
    ok = w.put("TriggerSource", source) and ok
    if s.trigger_mode == "hardware":
        return "hardware"
    if not w.has("TriggerSoftware"):
        w.problems.append("TriggerSoftware: the device has no such node; software trigger not set")
        ok = False
    if not ok:
        w.put("TriggerMode", "Off", needed=False)
        w.problems.append("trigger: software trigger not set up; the camera free-runs instead")
        return "free_run"
    return "software"
