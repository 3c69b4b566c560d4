"""A GenICam camera as an image source, through its vendor's GenTL producer and harvesters.

:mod:`~aoi.sources.genicam.devices` finds producers and lists and picks cameras;
:mod:`~aoi.sources.genicam.source` opens one and grabs frames; :mod:`~aoi.sources.genicam.nodes`
reads and sets the device's GenICam nodes; :mod:`~aoi.sources.genicam.pixelformat` turns a
buffer into a station image. Each module documents the harvesters traps it handles.
"""

from aoi.sources.genicam.devices import (
    GENTL_PATH_VAR,
    SELECTOR_FIELDS,
    describe_device,
    find_cti_files,
    list_devices,
    select_device,
)
from aoi.sources.genicam.source import POLL_PAUSE_S, POLL_TIMEOUT_S, GenICamSource

__all__ = [
    "GENTL_PATH_VAR",
    "POLL_PAUSE_S",
    "POLL_TIMEOUT_S",
    "SELECTOR_FIELDS",
    "GenICamSource",
    "describe_device",
    "find_cti_files",
    "list_devices",
    "select_device",
]
