"""The one place that turns a source spec (``synthetic``, ``replay:DIR``, ``genicam[:ID]``)
into an image source."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aoi.config import StationConfig
from aoi.errors import SourceError
from aoi.framemem import HEAP, FrameMemory
from aoi.recipe import LoadedRecipe
from aoi.sources.base import ImageSource

SOURCE_SPECS = "synthetic | replay:DIR | genicam[:SERIAL_OR_NAME]"
#: Also ``synthetic?prerender=K`` (benches): K boards rendered once, replayed (``--prerender``).


def create_source(
    spec: str,
    loaded: LoadedRecipe,
    template: np.ndarray,
    station: StationConfig,
    *,
    seed: int | None = None,
    loop: bool = False,
    memory: FrameMemory = HEAP,
) -> ImageSource:
    """The image source ``spec`` names, not yet opened; the camera and prerendered boards put
    their frames in ``memory`` (a GPU station's page-locked memory, aoi/framemem.py)."""
    kind, _, arg = spec.partition(":")
    kind, _, query = kind.partition("?")
    if kind == "synthetic":
        from aoi.sources.synthetic import PrerenderedSource, SyntheticSource

        made = SyntheticSource(template, loaded.recipe.synthetic, seed=seed, board=loaded.name)
        key, _, value = query.partition("=")
        if not query:
            return made
        if key != "prerender" or not value.isdigit() or int(value) < 1:
            msg = f"source {spec!r}: synthetic takes ?prerender=K (K boards rendered once)"
            raise SourceError(msg)
        return PrerenderedSource(made, int(value), memory=memory)
    if kind == "replay":
        if not arg:
            msg = f"source {spec!r}: replay needs a folder, as replay:DIR"
            raise SourceError(msg)
        from aoi.sources.replay import ReplaySource

        return ReplaySource(Path(arg), loop=loop)
    if kind == "genicam":
        from aoi.sources.genicam import GenICamSource

        return GenICamSource(
            cti_paths=station.camera.cti_paths or None,
            device=arg or station.camera.device or None,
            settings=loaded.recipe.camera,
            fetch_timeout_s=station.camera.fetch_timeout_s,
            memory=memory,
        )
    msg = f"source must be {SOURCE_SPECS}, got {spec!r}"
    raise SourceError(msg)
