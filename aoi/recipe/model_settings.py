"""The recipe's ``[model]`` table: the defect model, how its output is read, at what scales and
with which further models."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from aoi.recipe.paths import RecipePath
from aoi.recipe.settings import _Strict


class SplitSettings(_Strict):
    """When one component of a class is two defects: ``[model] split_merged``."""

    fill: float = Field(
        gt=0.0,
        lt=1.0,
        description=(
            "a component whose cells fill less than this part of its box is split where two "
            "boxes meeting corner to corner cover its cells, and each box its own, this well"
        ),
    )
    max_px: int = Field(
        gt=0,
        description="a component with a side longer than this (frame pixels) is one defect",
    )


class ModelSettings(_Strict):
    path: RecipePath = Field(description="the defect model (.onnx), relative to the recipe file")
    precision: Literal["fp32", "fp16", "int8"] = Field(
        default="fp32",
        description="engine precision: fp32, fp16 or int8 (int8 needs calibration images)",
    )
    calibration_dir: RecipePath | None = Field(
        default=None,
        description="folder of calibration images for int8 engines, relative to the recipe file",
    )
    one_defect_overlap: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description=(
            "candidates of different classes whose boxes share at least this part of the smaller "
            "box are one defect: only the higher score is kept (a model trained on one class per "
            "defect may call a defect twice); unset: every class keeps its candidates"
        ),
    )
    alternates: bool = Field(
        default=False,
        description=(
            "every candidate also gives its next most likely reading: the other defect class "
            "that reaches the highest probability on its cells, and (with one_defect_overlap) "
            "the lower-scoring class of one defect called twice, its score times 0.45. Both "
            "score under 0.5, so no floor of 0.5 or more keeps them: the station never reports "
            "them, and aoi eval's curves rank them (needs the network's full maps)"
        ),
    )
    split_merged: SplitSettings | None = Field(
        default=None,
        description=(
            "two neighbouring defects of one class painted as one are told apart by their "
            "boxes (aoi/vision/boxsplit.py); unset: one component, one defect"
        ),
    )
    scales: tuple[float, ...] = Field(
        default=(1.0,),
        description=(
            "the network also reads each board resampled by these factors (the first is 1); a "
            "defect's score is the mean of its scores over the readings (scales, times the "
            "models with ensemble), 0 where one finds nothing (aoi/vision/multiscale.py). Thin "
            "tracks gain; each scale costs a network run"
        ),
    )
    ensemble: tuple[RecipePath, ...] = Field(
        default=(),
        max_length=3,
        description=(
            "further models (.onnx, relative to the recipe file) that read every board too, at "
            "every scale; their candidates are fused with the first model's as the scales' are "
            "(aoi/vision/multiscale.py). Each costs a network run per scale"
        ),
    )

    @field_validator("scales")
    @classmethod
    def _scales(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v or v[0] != 1.0 or len(set(v)) != len(v) or not all(0.25 <= s <= 4 for s in v):
            msg = f"must start with 1, then distinct factors in 0.25..4, got {list(v)}"
            raise ValueError(msg)
        return v
