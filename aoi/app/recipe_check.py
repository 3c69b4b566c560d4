"""What starting a recipe checks, for ``aoi recipe validate``: its template and its model run.

:func:`aoi.recipe.load_recipe` stays cheap (schema, files present, hashes); a recipe it accepts
could still be refused at start: a golden template of another size than the frame, a model file
that is no ONNX model or does not take the recipe's input. This check opens what the station
opens (:class:`aoi.app.rig.Rig`): the template at the frame size, the model in ONNX Runtime on
the CPU, the pipeline, and one warm-up inference at the recipe's input shape.
"""

from __future__ import annotations

import logging

from aoi.errors import AoiError, RecipeError
from aoi.inference.ensemble import one_backend
from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.pipeline import Pipeline
from aoi.recipe import LoadedRecipe
from aoi.recipe.template import load_template

log = logging.getLogger(__name__)


class StartCheck:
    """Runs each distinct (template, model, geometry) once: a validate of many recipes that
    share a model pays for its session and warm-up once."""

    def __init__(self) -> None:
        self._done: dict[tuple[str, ...], str | None] = {}

    def __call__(self, loaded: LoadedRecipe) -> None:
        """Raise :class:`RecipeError` naming the recipe, the field and the file if ``loaded``
        would not start."""
        g = loaded.recipe.geometry
        models = [str(p) for p in (loaded.model_path, *loaded.ensemble_paths)]
        key = (str(loaded.template_path), *models, g.model_dump_json())
        if key not in self._done:
            try:
                check_recipe_starts(loaded)
            except RecipeError as err:
                self._done[key] = str(err).removeprefix(f"{loaded.path}: ")
            else:
                self._done[key] = None
        problem = self._done[key]
        if problem is not None:
            raise RecipeError(f"{loaded.path}: {problem}")


def check_recipe_starts(loaded: LoadedRecipe) -> None:
    """Open the recipe's template and model as a start does; :class:`RecipeError` if one fails."""
    g = loaded.recipe.geometry
    source = str(loaded.path)
    template = load_template(loaded.template_path, g.frame_width_px, g.frame_height_px, source)
    model = loaded.model_path
    backends = [
        OnnxRuntimeBackend(m, g.profile, device="cpu", threads=1)
        for m in (model, *loaded.ensemble_paths)
    ]
    try:
        with one_backend(backends) as backend:
            Pipeline(loaded, backend, template=template).warm_up()
    except AoiError as err:
        # ModelError (not ONNX, wrong inputs), InferenceError (the shape the recipe feeds).
        what = "model.path must name an ONNX model that runs"
        if len(backends) > 1:  # the message of a failing member names its file
            what, model = "model.path and model.ensemble must name ONNX models that run", "one"
        msg = f"{source}: {what} on this recipe's geometry, {model} failed: {err}"
        raise RecipeError(msg) from err
    log.debug("%s starts: template %s, model %s", source, loaded.template_path, model)
