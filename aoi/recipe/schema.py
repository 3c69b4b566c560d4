"""The recipe's schema: pydantic models for everything that inspects one product variant.

Every model is strict (unknown fields are errors) and frozen. Validators check what a single
field cannot say alone: tiles that fit the frame, profiles ordered min <= opt <= max, masks inside
the frame. Reading files, migrating old versions and hashing live in :mod:`aoi.recipe.loading`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from aoi.recipe.model_settings import ModelSettings
from aoi.recipe.paths import RecipePath
from aoi.recipe.settings import (
    CameraSettings,
    MaskRegion,
    RegistrationSettings,
    SyntheticSettings,
    VerdictRules,
    _Strict,
)
from aoi.types import DEFECT_CLASSES

SCHEMA_VERSION = 1

#: Input channels of the station's models: board under test and golden template.
MODEL_CHANNELS = 2


class Shape4(_Strict):
    """An NCHW input shape of the TensorRT optimisation profile (N boards, 2 channels, H, W)."""

    batch: int = Field(ge=1, le=64, description="boards (or tiles) per network call")
    channels: int = Field(
        default=MODEL_CHANNELS, description="input channels: always 2 (board under test + template)"
    )
    height_px: int = Field(ge=16, le=16384, description="network input height, px")
    width_px: int = Field(ge=16, le=16384, description="network input width, px")

    @field_validator("channels")
    @classmethod
    def _two_channels(cls, v: int) -> int:
        if v != MODEL_CHANNELS:
            msg = f"must be {MODEL_CHANNELS} (board under test + template), got {v}"
            raise ValueError(msg)
        return v

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.batch, self.channels, self.height_px, self.width_px)


class Profile(_Strict):
    """min/opt/max input shapes: ONNX Runtime checks against them, TensorRT builds for them."""

    min: Shape4 = Field(description="smallest input shape the engine accepts")
    opt: Shape4 = Field(description="the input shape the engine is tuned for")
    max: Shape4 = Field(description="largest input shape the engine accepts")

    @model_validator(mode="after")
    def _ordered(self) -> Profile:
        names = ("batch", "channels", "height_px", "width_px")
        for i, name in enumerate(names):
            lo, mid, hi = self.min.as_tuple()[i], self.opt.as_tuple()[i], self.max.as_tuple()[i]
            if not lo <= mid <= hi:
                msg = f"{name} must satisfy min <= opt <= max, got {lo} <= {mid} <= {hi}"
                raise ValueError(msg)
        return self

    def contains(self, shape: tuple[int, ...]) -> bool:
        lo, hi = self.min.as_tuple(), self.max.as_tuple()
        return len(shape) == 4 and all(lo[i] <= shape[i] <= hi[i] for i in range(4))


class Geometry(_Strict):
    """The frame the camera delivers and how it is cut into network inputs."""

    frame_width_px: int = Field(
        ge=16,
        le=65536,
        description="width of the frame the camera delivers (and of the template), px",
    )
    frame_height_px: int = Field(
        ge=16,
        le=65536,
        description="height of the frame the camera delivers (and of the template), px",
    )
    mode: Literal["full", "tiles"] = Field(
        default="full",
        description="full: the whole frame is one network input; tiles: cut into tiles",
    )
    tile_width_px: int | None = Field(
        default=None, ge=16, description="tile width in mode tiles, px"
    )
    tile_height_px: int | None = Field(
        default=None, ge=16, description="tile height in mode tiles, px"
    )
    tile_overlap_px: int = Field(
        default=32,
        ge=0,
        description="tiles overlap by this much so a defect on a seam is seen whole, px",
    )
    size_multiple_px: int = Field(
        default=16,
        ge=1,
        le=256,
        description="network inputs are padded up to a multiple of this (the model's stride), px",
    )
    profile: Profile = Field(
        description="min/opt/max network input shapes (TensorRT optimisation profile)"
    )
    mm_per_px: float | None = Field(
        default=None,
        gt=0,
        le=100,
        description="the template's scale, mm per pixel (optional; plant messages give defect "
        "regions in mm with it, in pixels without)",
    )

    @model_validator(mode="after")
    def _tiles_fit(self) -> Geometry:
        if self.mode == "tiles":
            if self.tile_width_px is None or self.tile_height_px is None:
                msg = "mode 'tiles' needs tile_width_px and tile_height_px"
                raise ValueError(msg)
            if self.tile_overlap_px >= min(self.tile_width_px, self.tile_height_px):
                msg = (
                    f"tile_overlap_px must be smaller than the tile, got {self.tile_overlap_px} "
                    f">= {min(self.tile_width_px, self.tile_height_px)}"
                )
                raise ValueError(msg)
        shape = self.input_shape()
        if not self.profile.contains(shape):
            msg = (
                f"the network input this geometry produces, {list(shape)} (N, C, H, W), must lie "
                f"within profile min {list(self.profile.min.as_tuple())} and max "
                f"{list(self.profile.max.as_tuple())}"
            )
            raise ValueError(msg)
        return self

    def _padded(self, v: int) -> int:
        m = self.size_multiple_px
        return math.ceil(v / m) * m

    def input_hw(self) -> tuple[int, int]:
        """Height and width of one network input after padding."""
        if self.mode == "tiles":
            assert self.tile_height_px is not None and self.tile_width_px is not None
            h = min(self.tile_height_px, self.frame_height_px)
            w = min(self.tile_width_px, self.frame_width_px)
        else:
            h, w = self.frame_height_px, self.frame_width_px
        return self._padded(h), self._padded(w)

    def input_shape(self) -> tuple[int, int, int, int]:
        """The NCHW shape of one network call (tiles go in batches up to the profile's max)."""
        h, w = self.input_hw()
        batch = 1
        if self.mode == "tiles":
            batch = min(self.tile_count(), self.profile.max.batch)
        return (batch, MODEL_CHANNELS, h, w)

    def tile_count(self) -> int:
        if self.mode != "tiles":
            return 1
        assert self.tile_height_px is not None and self.tile_width_px is not None
        return _tiles_along(self.frame_width_px, self.tile_width_px, self.tile_overlap_px) * (
            _tiles_along(self.frame_height_px, self.tile_height_px, self.tile_overlap_px)
        )


def _tiles_along(length: int, tile: int, overlap: int) -> int:
    if tile >= length:
        return 1
    return math.ceil((length - overlap) / (tile - overlap))


class ClassRule(_Strict):
    """Thresholds and action for one defect class."""

    score: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="a defect of this class scoring at least this (0..1) counts (NG score)",
    )
    review_score: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="scores from this up to the NG score make the board REVIEW (unset: never)",
    )
    min_area_px: int = Field(
        default=4, ge=0, description="smaller defects of this class are not reported, px²"
    )
    action: Literal["ng", "review", "ignore"] = Field(
        default="ng", description="what a defect of this class does: ng, review, or ignore"
    )

    @model_validator(mode="after")
    def _review_below_score(self) -> ClassRule:
        if self.review_score is not None and self.review_score >= self.score:
            msg = f"review_score must be < score, got {self.review_score} >= {self.score}"
            raise ValueError(msg)
        return self


ClassName = Annotated[str, Field(pattern="^[a-z_]+$")]


class Recipe(_Strict):
    """How to inspect one product variant."""

    schema_version: int = Field(
        description="version of this file's layout (old files are migrated on load)"
    )
    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="the recipe's name: letters, digits, . _ - (the file is usually NAME.toml)",
    )
    product_code: int = Field(
        ge=1, le=65535, description="code the PLC uses to select the recipe; one recipe per code"
    )
    description: str = Field(default="", description="free text shown beside the name")
    version: int = Field(default=1, ge=1, description="bumped each time the recipe is saved")
    cycle_budget_ms: float = Field(
        default=50.0,
        gt=0,
        le=60_000,
        description="time one board may take, ms; slower cycles count as over budget",
    )
    template: RecipePath = Field(
        description="the golden template image (a good board), relative to the recipe file"
    )
    camera: CameraSettings = Field(
        default=CameraSettings(), description="camera settings applied through the GenICam node map"
    )
    registration: RegistrationSettings = Field(
        default=RegistrationSettings(),
        description="how each board is aligned to the golden template",
    )
    geometry: Geometry = Field(description="the frame and how it is cut into network inputs")
    model: ModelSettings = Field(description="the defect model")
    classes: dict[ClassName, ClassRule] = Field(
        description="thresholds and action per defect class"
    )
    masks: list[MaskRegion] = Field(
        default_factory=list,
        description="don't-care rectangles: defects inside them are not reported",
    )
    verdict: VerdictRules = Field(
        default=VerdictRules(), description="how defects make the verdict"
    )
    synthetic: SyntheticSettings = Field(
        default=SyntheticSettings(), description="the product's synthetic twin (source synthetic)"
    )

    @field_validator("schema_version")
    @classmethod
    def _current(cls, v: int) -> int:
        if v != SCHEMA_VERSION:
            msg = f"must be {SCHEMA_VERSION} after migration, got {v}"
            raise ValueError(msg)
        return v

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, v: dict[str, ClassRule]) -> dict[str, ClassRule]:
        unknown = sorted(set(v) - set(DEFECT_CLASSES))
        if unknown:
            msg = f"unknown class(es) {unknown}; expected some of {list(DEFECT_CLASSES)}"
            raise ValueError(msg)
        return v

    @model_validator(mode="after")
    def _masks_inside(self) -> Recipe:
        w, h = self.geometry.frame_width_px, self.geometry.frame_height_px
        for i, m in enumerate(self.masks):
            if m.x1 > w or m.y1 > h:
                msg = f"masks[{i}] must lie inside the {w}x{h} frame, got x1={m.x1}, y1={m.y1}"
                raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _scales_in_profile(self) -> Recipe:
        g = self.geometry
        h, w = g.input_hw()
        top = max(self.model.scales)
        need = (scaled_side(h, top, g.size_multiple_px), scaled_side(w, top, g.size_multiple_px))
        have = (g.profile.max.height_px, g.profile.max.width_px)
        if need[0] > have[0] or need[1] > have[1]:
            msg = (
                f"geometry.profile.max must hold the input at model.scales' {top:g}: expected "
                f"at least {need[0]}x{need[1]} px, found {have[0]}x{have[1]}"
            )
            raise ValueError(msg)
        return self

    def rule_for(self, class_name: str) -> ClassRule:
        """The class's rule; a class the recipe does not list uses the defaults."""
        return self.classes.get(class_name, ClassRule())


def scaled_side(n: int, scale: float, multiple: int) -> int:
    """A network input side resampled by ``scale``, rounded to the model's ``multiple``."""
    return max(multiple, round(n * scale / multiple) * multiple)


def json_schema() -> dict[str, Any]:
    """The recipe JSON schema, for editors (``aoi recipe schema``)."""
    return Recipe.model_json_schema()
