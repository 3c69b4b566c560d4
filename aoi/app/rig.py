"""The recipe-bound part of a running station: template, engine, image source, warm pipeline.

The station (:mod:`aoi.app.station`) runs its cycles on one; a recipe change builds and warms
up a whole new rig before the old one closes, so a change that fails leaves the station
inspecting as before. The dry run, ``aoi eval`` and the storage benchmark open a rig without a
source (``source_spec=None``) and feed its pipeline frames of their own.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from contextlib import ExitStack

import numpy as np

from aoi.app.calibration import recipe_calibration
from aoi.config import StationConfig
from aoi.errors import AoiError
from aoi.events import EventBus
from aoi.heap import retain_freed_memory
from aoi.inference import create_backend
from aoi.inference.base import CPU_BACKEND, InferenceBackend
from aoi.inference.ensemble import one_backend
from aoi.inference.pinned_frames import frame_memory
from aoi.pipeline import InspectionIds, Pipeline, VerdictSink
from aoi.recipe import LoadedRecipe
from aoi.recipe.template import load_template
from aoi.sources.base import ImageSource
from aoi.sources.factory import create_source


class RigError(AoiError):
    """The recipe's engine or image source could not be opened; ``part`` says which."""

    def __init__(self, part: str, message: str) -> None:
        super().__init__(message)
        self.part = part


class Rig:
    """A recipe's golden template, inference backend, image source and warmed-up pipeline."""

    def __init__(
        self,
        loaded: LoadedRecipe,
        config: StationConfig,
        *,
        source_spec: str | None,
        sinks: Sequence[VerdictSink] = (),
        events: EventBus | None = None,
        backend: str | None = None,
        threads: int | None = None,
        seed: int | None = None,
        loop: bool = False,
        ids: InspectionIds | None = None,
    ) -> None:
        self.loaded = loaded
        self.source_spec = source_spec
        g = loaded.recipe.geometry
        with ExitStack() as stack:
            try:
                template = load_template(
                    loaded.template_path, g.frame_width_px, g.frame_height_px, str(loaded.path)
                )
                backends = [
                    create_backend(
                        backend or config.inference.backend,
                        model,
                        g.profile,
                        threads=threads if threads is not None else config.inference.threads,
                        recipe=loaded,
                        inference=config.inference,
                        calibration=recipe_calibration,
                    )
                    for model in (loaded.model_path, *loaded.ensemble_paths)
                ]
                # A recipe's ensemble: its further models behind the first (Ensemble.members).
                self.backend: InferenceBackend = stack.enter_context(one_backend(backends))
            except AoiError as err:
                raise RigError("engine", str(err)) from err
            if self.backend.name == CPU_BACKEND:  # its tensors reused board after board
                retain_freed_memory()
            self._source: ImageSource | None = None
            #: Where the source puts frames (aoi/framemem.py): "heap" or "page-locked".
            self.frame_memory = "heap"
            if source_spec is not None:
                # A GPU station's frames in page-locked memory: each upload a direct transfer.
                memory = stack.enter_context(frame_memory(self.backend.name))
                self.frame_memory = memory.name
                try:
                    made = create_source(
                        source_spec, loaded, template, config, seed=seed, loop=loop, memory=memory
                    )
                    self._source = stack.enter_context(made)
                except (AoiError, ValueError) as err:
                    raise RigError("camera", str(err)) from err
            try:
                self.pipeline = Pipeline(
                    loaded,
                    self.backend,
                    template=template,
                    sinks=list(sinks),
                    events=events,
                    ids=ids,
                )
                self.pipeline.warm_up()
                # What exists now (runtimes, sessions, recipe) lives as long as the rig: out of
                # the collector's sight, a full collection no longer walks it inside a cycle.
                gc.freeze()
            except AoiError as err:
                raise RigError("engine", str(err)) from err
            self.template: np.ndarray = template
            self._opened = stack.pop_all()  # all opened: kept until close()
            self._closed = False

    @property
    def source(self) -> ImageSource:
        if self._source is None:
            msg = f"this rig of {self.loaded.name} was opened without an image source"
            raise AoiError(msg)
        return self._source

    def pipeline_for(
        self,
        loaded: LoadedRecipe,
        sinks: Sequence[VerdictSink] = (),
        events: EventBus | None = None,
    ) -> Pipeline:
        """Another pipeline on this rig's engine and template (a variant of the same product:
        ``aoi eval``'s wide review band, the storage benchmark's logged twin)."""
        return Pipeline(
            loaded,
            self.backend,
            template=self.template,
            sinks=list(sinks),
            events=events,
            ids=self.pipeline.ids,
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        self._opened.close()
        gc.unfreeze()  # this rig's objects can be collected again

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
