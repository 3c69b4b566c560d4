"""The recipe's settings that stand alone: camera, registration, masks, verdict, synthetic twin.

Split from :mod:`aoi.recipe.schema` (which re-exports them) to keep each module short; every
field carries a description, shown by ``aoi recipe schema`` and as the GUI form's tooltips.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraSettings(_Strict):
    """Camera settings applied through the GenICam node map where the device has the node."""

    pixel_format: Literal[
        "Mono8",
        "Mono12",
        "Mono16",
        "RGB8",
        "BGR8",
        "RGBa8",
        "BayerRG8",
        "BayerGR8",
        "BayerGB8",
        "BayerBG8",
    ] = Field(default="Mono8", description="pixel format the camera is set to deliver")
    exposure_us: float = Field(
        default=2000.0, gt=0, le=10_000_000, description="exposure time in microseconds"
    )
    gain_db: float = Field(
        default=0.0,
        ge=0,
        le=48,
        description="analogue gain in dB (0 = none; more gain, more noise)",
    )
    trigger_mode: Literal["software", "hardware", "free_run"] = Field(
        default="software",
        description="software: the station triggers; hardware: a line input; free_run: none",
    )
    trigger_source: str = Field(
        default="Line0",
        description="the camera's input line for hardware triggers (GenICam TriggerSource)",
    )
    roi_offset_x_px: int = Field(
        default=0, ge=0, description="left edge of the camera's region of interest, px"
    )
    roi_offset_y_px: int = Field(
        default=0, ge=0, description="top edge of the camera's region of interest, px"
    )
    roi_width_px: int | None = Field(
        default=None,
        gt=0,
        description="width of the region of interest, px (unset: the full sensor)",
    )
    roi_height_px: int | None = Field(
        default=None,
        gt=0,
        description="height of the region of interest, px (unset: the full sensor)",
    )
    nodes: dict[str, float | int | str | bool] = Field(
        default_factory=dict,
        description="further GenICam node values to set, by feature name (for example BlackLevel)",
    )


class RegistrationSettings(_Strict):
    """How the board under test is aligned to the golden template."""

    method: Literal["patches", "ecc", "none"] = Field(
        default="patches",
        description="patches: fit a few patches (fast); ecc: whole frame (slow); none",
    )
    max_shift_px: float = Field(
        default=8.0,
        ge=0,
        le=200,
        description="a board shifted further than this from the template is an ERROR, px",
    )
    max_rotation_deg: float = Field(
        default=2.0,
        ge=0,
        le=10,
        description="a board turned further than this from the template is an ERROR, degrees",
    )
    downscale: int = Field(
        default=4,
        ge=1,
        le=16,
        description="the coarse search runs on the image shrunk by this factor (speed/precision)",
    )
    iterations: int = Field(
        default=50, ge=1, le=1000, description="most iterations of the alignment's refinement"
    )
    min_correlation: float = Field(
        default=0.6,
        ge=0,
        le=1,
        description="a match with the template below this (0..1) fails alignment: ERROR, never OK",
    )
    edge_margin_px: int | None = Field(
        default=None,
        ge=0,
        le=200,
        description=(
            "on a moved board, defects centred within this many px of the edge of what the "
            "camera saw are not inspected: that edge holds replicated border after alignment; "
            "unset: 4 px, as before this field existed (the shipped recipes set 12)"
        ),
    )


class MaskRegion(_Strict):
    """A don't-care rectangle in template pixels; defects there are not reported."""

    x0: int = Field(ge=0, description="left edge of the don't-care rectangle, template px")
    y0: int = Field(ge=0, description="top edge of the don't-care rectangle, template px")
    x1: int = Field(ge=0, description="right edge (exclusive), template px")
    y1: int = Field(ge=0, description="bottom edge (exclusive), template px")
    note: str = Field(default="", description="why this region is not inspected (fiducial, label…)")

    @model_validator(mode="after")
    def _ordered(self) -> MaskRegion:
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            msg = f"needs x0 < x1 and y0 < y1, got ({self.x0}, {self.y0}, {self.x1}, {self.y1})"
            raise ValueError(msg)
        return self


class VerdictRules(_Strict):
    ng_min_defects: int = Field(
        default=1,
        ge=1,
        description="NG when at least this many defects of classes whose action is ng remain",
    )
    review_max_defects: int = Field(
        default=50,
        ge=1,
        description="REVIEW above this many defects (a flood hints at a bad image)",
    )


class SyntheticSettings(_Strict):
    """The product's synthetic twin, used when the source is ``synthetic``."""

    look: Literal["binary", "grey"] = Field(
        default="binary",
        description="binary: DeepPCB-like black and white; grey: a camera-like grey image",
    )
    seed: int = Field(
        default=0, description="random seed of the synthetic boards (same seed, same boards)"
    )
    defect_rate: float = Field(
        default=0.5, ge=0, le=1, description="share of synthetic boards that carry defects (0..1)"
    )
    defects_min: int = Field(
        default=1, ge=1, description="fewest defects on a defective synthetic board"
    )
    defects_max: int = Field(
        default=4, ge=1, description="most defects on a defective synthetic board"
    )
    max_shift_px: float = Field(
        default=3.0, ge=0, description="synthetic boards are shifted up to this much, px"
    )
    max_rotation_deg: float = Field(
        default=1.0, ge=0, description="synthetic boards are turned up to this much, degrees"
    )
    noise_sigma: float = Field(
        default=4.0,
        ge=0,
        description="grey-level noise added to synthetic boards (standard deviation)",
    )

    @model_validator(mode="after")
    def _range(self) -> SyntheticSettings:
        if self.defects_max < self.defects_min:
            msg = f"defects_max must be >= defects_min, got {self.defects_max} < {self.defects_min}"
            raise ValueError(msg)
        return self
