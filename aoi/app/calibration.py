"""Network inputs made exactly as the cycle makes them, for INT8 calibration and parity checks.

A recipe's ``model.calibration_dir`` holds images of its product as the camera delivers them.
Each is read like a replayed frame (:func:`aoi.sources.replay.read_image`), turned to mono 8-bit,
registered to the golden template, and cut into the uint8 ``[N, 2, H, W]`` batches the network
sees in the cycle (:class:`aoi.vision.preprocess.InputBuilder`). INT8 scales learnt from anything
else would not match what the station runs on.

This is app-level wiring: it joins sources, vision and the pipeline's template loading, which the
inference layer may not import. The TensorRT builder receives the result as a
:class:`~aoi.inference.tensorrt.calibration.CalibrationData` from :func:`recipe_calibration`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aoi.errors import FrameError, RecipeError, RegistrationError, SourceError
from aoi.inference.tensorrt.calibration import CalibrationData
from aoi.inference.tensorrt.plan import calibration_shape
from aoi.pipeline import load_template
from aoi.pixels import to_mono8
from aoi.recipe import LoadedRecipe, file_hash
from aoi.sources.replay import IMAGE_SUFFIXES, read_image
from aoi.sources.synthetic import SyntheticSource
from aoi.vision.preprocess import InputBuilder
from aoi.vision.registration import Registrar, align

log = logging.getLogger(__name__)


def calibration_dir(loaded: LoadedRecipe) -> Path:
    """The recipe's calibration folder; :class:`RecipeError` naming the field if unusable."""
    source = str(loaded.path)
    setting = loaded.recipe.model.calibration_dir
    if setting is None:
        msg = (
            f"{source}: model.calibration_dir is required for precision int8 (a folder of "
            f"product images for INT8 calibration), found none"
        )
        raise RecipeError(msg)
    folder = loaded.resolve(setting)
    if not folder.is_dir():
        msg = (
            f"{source}: model.calibration_dir must name a folder of images, found none at {folder}"
        )
        raise RecipeError(msg)
    return folder


def calibration_images(loaded: LoadedRecipe) -> list[Path]:
    """The calibration images, sorted by name (so digests and batches are reproducible)."""
    folder = calibration_dir(loaded)
    images = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not images:
        msg = (
            f"{loaded.path}: model.calibration_dir {folder} holds no images; expected "
            f"{', '.join(sorted(IMAGE_SUFFIXES))} files"
        )
        raise RecipeError(msg)
    return images


def calibration_digest(loaded: LoadedRecipe, images: list[Path]) -> str:
    """SHA-256 of everything calibration batches are made from: the images (names and bytes),
    the golden template, and the registration and geometry settings."""
    recipe = loaded.recipe
    h = hashlib.sha256()
    settings = {
        "registration": recipe.registration.model_dump(mode="json"),
        "geometry": recipe.geometry.model_dump(mode="json"),
    }
    h.update(json.dumps(settings, sort_keys=True).encode())
    h.update(file_hash(loaded.template_path).encode())
    for p in images:
        h.update(p.name.encode())
        h.update(file_hash(p).encode())
    return h.hexdigest()


@dataclass
class BatchStats:
    """What making batches from images used and skipped (reported after calibration)."""

    images_used: int = 0
    batches: int = 0
    tiles_left_over: int = 0
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """The phrase after "N batches" in the builder's messages."""
        skipped = f" ({'; '.join(self.skipped[:3])})" if self.skipped else ""
        return (
            f"from {self.images_used} usable image(s), {len(self.skipped)} skipped{skipped}, "
            f"{self.tiles_left_over} tile(s) left over"
        )


class CycleInputs:
    """Turns board images into the network inputs the cycle would make from them."""

    def __init__(self, loaded: LoadedRecipe, template: np.ndarray | None = None) -> None:
        g = loaded.recipe.geometry
        self.loaded = loaded
        if template is None:
            template = load_template(
                loaded.template_path, g.frame_width_px, g.frame_height_px, str(loaded.path)
            )
        self.template = template
        self.registrar = Registrar(template, loaded.recipe.registration)
        self.inputs = InputBuilder(g, template)

    def batches(self, image: np.ndarray) -> list[np.ndarray]:
        """One board's network batches as the cycle feeds them (copies: the builder reuses
        its buffer)."""
        mono = to_mono8(image)
        self.inputs.check_frame(mono)
        aligned, _reg = align(self.registrar, mono)
        return [batch.copy() for batch, _tiles in self.inputs.batches(aligned)]

    def tiles(self, image: np.ndarray) -> list[np.ndarray]:
        """One board's ``[2, H, W]`` network inputs, tile by tile."""
        return [tile for batch in self.batches(image) for tile in batch]


def batches_of(tiles: Iterable[np.ndarray], batch: int, stats: BatchStats) -> Iterator[np.ndarray]:
    """Exactly ``batch``-sized ``[batch, 2, H, W]`` arrays from a stream of tiles.

    Tiles of consecutive images share a batch; a last, incomplete batch is left out (counted in
    ``stats.tiles_left_over``), because a calibration batch must have the calibration shape.
    """
    pending: list[np.ndarray] = []
    for tile in tiles:
        pending.append(tile)
        if len(pending) == batch:
            stats.batches += 1
            yield np.ascontiguousarray(np.stack(pending))
            pending = []
    stats.tiles_left_over = len(pending)


def calibration_batches(
    loaded: LoadedRecipe, images: list[Path], stats: BatchStats
) -> Iterator[np.ndarray]:
    """Calibration batches of :func:`calibration_shape` from the recipe's images.

    An image that cannot be read, has the wrong size or fails registration is skipped with a
    warning naming it (the cycle would give that board an ERROR verdict, not inspect it).
    The builder checks each batch's shape (:func:`aoi.inference.tensorrt.calibration.
    checked_batches`).
    """
    maker = CycleInputs(loaded)

    def tiles() -> Iterator[np.ndarray]:
        for path in images:
            try:
                board_tiles = maker.tiles(read_image(path))
            except (SourceError, FrameError, RegistrationError) as err:
                stats.skipped.append(f"{path.name}: {err}")
                log.warning("calibration image skipped: %s: %s", path, err)
                continue
            stats.images_used += 1
            yield from board_tiles

    yield from batches_of(tiles(), calibration_shape(loaded.recipe.geometry)[0], stats)


class _FolderBatches:
    """Makes a recipe's calibration batches on each call, keeping the stats of the latest."""

    def __init__(self, loaded: LoadedRecipe, images: list[Path]) -> None:
        self.loaded = loaded
        self.images = images
        self.stats = BatchStats()

    def __call__(self) -> Iterator[np.ndarray]:
        self.stats = BatchStats()
        return calibration_batches(self.loaded, self.images, self.stats)

    def summary(self) -> str:
        return self.stats.summary()


def recipe_calibration(loaded: LoadedRecipe) -> CalibrationData:
    """The recipe's INT8 calibration data from ``model.calibration_dir``, for the TensorRT builder.

    Lists and hashes the images now (the digest is part of the engine key); the batches are
    made only if the builder asks for them. :class:`RecipeError` naming the field when the
    folder is missing or holds no images.
    """
    images = calibration_images(loaded)
    batches = _FolderBatches(loaded, images)
    return CalibrationData(
        digest=calibration_digest(loaded, images),
        batches=batches,
        origin=f"{loaded.path}: model.calibration_dir {calibration_dir(loaded)}",
        summary=batches.summary,
    )


def synthetic_batches(
    loaded: LoadedRecipe, boards: int, seed: int | None = None
) -> Iterator[np.ndarray]:
    """Network batches of ``boards`` synthetic boards of the recipe's product, made like the
    cycle's (for parity checks where no images of the real product are at hand)."""
    maker = CycleInputs(loaded)
    with SyntheticSource(maker.template, loaded.recipe.synthetic, seed=seed) as source:
        for _ in range(boards):
            frame = source.grab()
            try:
                yield from maker.batches(frame.image)
            except RegistrationError as err:
                log.warning("parity board %d skipped: %s", frame.frame_id, err)
