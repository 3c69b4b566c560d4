"""The recipe-bound part of a running station: template, engine, image source, warm pipeline.

``aoi run`` and ``aoi gui`` both assemble their station from it. A recipe change builds and
warms up a whole new rig before the old one closes, so a change that fails leaves the station
inspecting as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack

import numpy as np

from aoi.app.calibration import recipe_calibration
from aoi.config import StationConfig
from aoi.errors import AoiError
from aoi.events import EventBus
from aoi.inference import create_backend
from aoi.inference.base import InferenceBackend
from aoi.pipeline import Pipeline, VerdictSink, load_template
from aoi.recipe import LoadedRecipe
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
        source_spec: str,
        sinks: Sequence[VerdictSink],
        events: EventBus | None,
        backend: str | None = None,
        threads: int | None = None,
        seed: int | None = None,
        loop: bool = False,
    ) -> None:
        self.loaded = loaded
        self.source_spec = source_spec
        g = loaded.recipe.geometry
        with ExitStack() as stack:
            try:
                template = load_template(
                    loaded.template_path, g.frame_width_px, g.frame_height_px, str(loaded.path)
                )
                self.backend: InferenceBackend = stack.enter_context(
                    create_backend(
                        backend or config.inference.backend,
                        loaded.model_path,
                        g.profile,
                        threads=threads if threads is not None else config.inference.threads,
                        recipe=loaded,
                        inference=config.inference,
                        calibration=recipe_calibration,
                    )
                )
            except AoiError as err:
                raise RigError("engine", str(err)) from err
            try:
                self.source: ImageSource = stack.enter_context(
                    create_source(source_spec, loaded, template, config, seed=seed, loop=loop)
                )
            except (AoiError, ValueError) as err:
                raise RigError("camera", str(err)) from err
            try:
                self.pipeline = Pipeline(
                    loaded, self.backend, template=template, sinks=list(sinks), events=events
                )
                self.pipeline.warm_up()
            except AoiError as err:
                raise RigError("engine", str(err)) from err
            self.template: np.ndarray = template
            self._opened = stack.pop_all()  # all opened: kept until close()

    def close(self) -> None:
        self._opened.close()
