"""What a recipe's TensorRT engine must be: profile, precision flags, buffers, calibration shape.

Everything here is plain Python and numpy: no TensorRT or CUDA import, so the rules are
unit-tested on any PC. The TensorRT modules ask this one what to build and how much to allocate,
and check what TensorRT reports against it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aoi.errors import InferenceError, ModelError, RecipeError
from aoi.recipe import Geometry, Profile, Recipe, scaled_side

Shape4 = tuple[int, int, int, int]

#: Output channels of the station's models: background then the six DeepPCB defect classes.
MODEL_CLASSES = 7

#: The TensorRT major versions this backend is written against.
SUPPORTED_TRT_MAJOR = 10


def dims_text(shape: tuple[int, ...] | list[int]) -> str:
    return "[" + ", ".join(str(v) for v in shape) + "]"


@dataclass(frozen=True)
class ProfileShapes:
    """The min/opt/max NCHW shapes of one TensorRT optimisation profile, as plain tuples."""

    min: Shape4
    opt: Shape4
    max: Shape4

    @classmethod
    def from_profile(cls, profile: Profile) -> ProfileShapes:
        return cls(profile.min.as_tuple(), profile.opt.as_tuple(), profile.max.as_tuple())

    def as_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    def contains(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == 4 and all(self.min[i] <= shape[i] <= self.max[i] for i in range(4))

    def text(self) -> str:
        return f"min {dims_text(self.min)} opt {dims_text(self.opt)} max {dims_text(self.max)}"


# --- profiles from recipes --------------------------------------------------------------------


def cycle_batch_sizes(geometry: Geometry) -> list[int]:
    """Every batch size one cycle feeds the network (tiles go in batches up to profile max)."""
    if geometry.mode != "tiles":
        return [1]
    tiles, most = geometry.tile_count(), geometry.profile.max.batch
    sizes = [most] * (tiles // most)
    if tiles % most:
        sizes.append(tiles % most)
    return sizes


def cycle_shapes(geometry: Geometry, scales: Sequence[float] = (1.0,)) -> list[Shape4]:
    """The distinct network input shapes of one cycle, most frequent first; then, for a recipe
    that reads boards at several scales (``[model] scales``), each further scale's."""
    h, w = geometry.input_hw()
    sizes = cycle_batch_sizes(geometry)
    ordered = sorted(set(sizes), key=lambda n: (-sizes.count(n), -n))
    m = geometry.size_multiple_px
    sides = [(scaled_side(h, s, m), scaled_side(w, s, m)) for s in scales[1:]]
    return [(n, 2, sh, sw) for sh, sw in [(h, w), *sides] for n in ordered]


def profile_for(recipe: Recipe, source: str) -> tuple[ProfileShapes, list[str]]:
    """The recipe's optimisation profile, checked against what its cycle feeds the network.

    Returns the profile and warnings (plain sentences); raises :class:`RecipeError` naming the
    file and field where the profile cannot serve the cycle.
    """
    g = recipe.geometry
    shapes = ProfileShapes.from_profile(g.profile)
    where = f"{source}: geometry.profile"
    m = g.size_multiple_px
    for corner in ("min", "opt", "max"):
        dims = getattr(shapes, corner)
        for axis, value in (("height_px", dims[2]), ("width_px", dims[3])):
            if value % m:
                msg = (
                    f"{where}.{corner}.{axis} must be a multiple of geometry.size_multiple_px "
                    f"({m}, the model's stride contract), got {value}"
                )
                raise RecipeError(msg)
    for shape in cycle_shapes(g, recipe.model.scales):
        if not shapes.contains(shape):
            msg = (
                f"{where}: the cycle feeds the network {dims_text(shape)} (N, C, H, W), which "
                f"must lie within {shapes.text()}"
            )
            raise RecipeError(msg)
    warnings = []
    usual = cycle_shapes(g)[0]
    if usual != shapes.opt:
        warnings.append(
            f"{where}.opt is {dims_text(shapes.opt)} but the cycle mostly runs "
            f"{dims_text(usual)}; TensorRT picks its kernels for opt, so set opt to that shape"
        )
    return shapes, warnings


def calibration_shape(geometry: Geometry) -> Shape4:
    """The one shape INT8 calibration batches have: the cycle's full batch at its input size.

    TensorRT's calibration profile replaces min and max by opt, so every calibration batch has
    exactly this shape; tiles from consecutive images fill it.
    """
    h, w = geometry.input_hw()
    return (max(cycle_batch_sizes(geometry)), 2, h, w)


# --- precision -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PrecisionPlan:
    """Builder flags (``trt.BuilderFlag`` member names) to set and clear for one precision."""

    precision: str
    set_flags: tuple[str, ...]
    clear_flags: tuple[str, ...]
    calibrate: bool


def trt_major(version: str) -> int:
    head = version.split(".", 1)[0]
    if not head.isdigit():
        msg = f"TensorRT version must look like 10.x.y, got {version!r}"
        raise ModelError(msg)
    return int(head)


def precision_plan(precision: str, trt_version: str, source: str = "recipe") -> PrecisionPlan:
    """How to ask TensorRT ``trt_version`` for ``precision`` (the recipe's ``model.precision``).

    fp32 clears TF32 so that fp32 means fp32 (TF32 is on by default and rounds matmul/conv
    inputs to a 10-bit mantissa). fp16 and int8 use TensorRT 10's weakly typed build flags;
    int8 also sets FP16 so layers that do not quantise well can fall back to half precision.
    TensorRT 11 removed those flags and the INT8 calibrators: there only fp32 is built here.
    """
    major = trt_major(trt_version)
    if major < SUPPORTED_TRT_MAJOR:
        msg = f"TensorRT must be 10 or newer for this station, found {trt_version}"
        raise ModelError(msg)
    if precision == "fp32":
        return PrecisionPlan("fp32", (), ("TF32",), calibrate=False)
    if precision not in ("fp16", "int8"):
        msg = f"{source}: model.precision must be fp32, fp16 or int8, got {precision!r}"
        raise RecipeError(msg)
    if major > SUPPORTED_TRT_MAJOR:
        msg = (
            f"{source}: model.precision {precision} needs TensorRT 10's FP16/INT8 builder flags "
            f"and INT8 calibrator, which TensorRT {trt_version} removed (it builds strongly typed "
            f'networks only); install tensorrt>=10,<11, or set precision = "fp32"'
        )
        raise ModelError(msg)
    if precision == "fp16":
        return PrecisionPlan("fp16", ("FP16",), (), calibrate=False)
    return PrecisionPlan("int8", ("FP16", "INT8"), (), calibrate=True)


# --- buffers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BufferPlan:
    """One I/O tensor's buffers: sized once for the largest shape the profile allows."""

    name: str
    is_input: bool
    dtype: np.dtype
    max_shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.max_shape) * self.dtype.itemsize

    def check_fits(self, shape: tuple[int, ...]) -> int:
        """Bytes of ``shape``; :class:`InferenceError` if it does not fit the planned buffer."""
        if any(v < 0 for v in shape):
            msg = f"tensor {self.name!r} has unresolved dimensions {dims_text(shape)}"
            raise InferenceError(msg)
        need = math.prod(shape) * self.dtype.itemsize
        if need > self.nbytes:
            msg = (
                f"tensor {self.name!r} of shape {dims_text(shape)} needs {need} bytes, more than "
                f"the {self.nbytes} planned for its largest shape {dims_text(self.max_shape)}"
            )
            raise InferenceError(msg)
        return need


def output_shape(
    input_shape: tuple[int, ...], *, stride: int, classes: int = MODEL_CLASSES
) -> Shape4:
    """The station model's output shape for an input shape: ``[N, classes, H/S, W/S]``."""
    n, _c, h, w = input_shape
    if h % stride or w % stride:
        msg = f"input {dims_text(input_shape)} is not divisible by the model's stride {stride}"
        raise InferenceError(msg)
    return (n, classes, h // stride, w // stride)


def reduced_output_shape(input_shape: tuple[int, ...], *, stride: int) -> tuple[int, int, int]:
    """The reduced graph's ``cls`` / ``score`` shape for an input shape: ``[N, H/S, W/S]``."""
    n, _classes, h, w = output_shape(input_shape, stride=stride)
    return (n, h, w)


def stride_of(input_shape: tuple[int, ...], out_shape: tuple[int, ...], where: str) -> int:
    """The model's output stride, from one input shape and the output shape it gives.

    ``out_shape`` is the full maps' ``[N, classes, H/S, W/S]`` or the reduced ``[N, H/S, W/S]``.
    """
    reduced = len(out_shape) == 3
    if reduced:
        out_shape = (out_shape[0], MODEL_CLASSES, *out_shape[1:])
    if len(out_shape) != 4 or out_shape[0] != input_shape[0] or out_shape[1] != MODEL_CLASSES:
        msg = (
            f"{where}: output must be [N, {MODEL_CLASSES}, H/S, W/S] or reduced [N, H/S, W/S] "
            f"for input {dims_text(input_shape)}, found {dims_text(out_shape)}"
        )
        raise ModelError(msg)
    sy, ry = divmod(input_shape[2], out_shape[2]) if out_shape[2] else (0, 1)
    sx, rx = divmod(input_shape[3], out_shape[3]) if out_shape[3] else (0, 1)
    if ry or rx or sy != sx or sy < 1:
        msg = (
            f"{where}: output {dims_text(out_shape)} must scale input {dims_text(input_shape)} "
            f"by one integer stride in H and W"
        )
        raise ModelError(msg)
    return sy


def plan_buffers(
    profile: ProfileShapes,
    outputs: dict[str, tuple[tuple[int, ...], np.dtype]],
    input_name: str,
) -> list[BufferPlan]:
    """Buffers for the uint8 input at the profile's max and for each output at its max shape.

    ``outputs`` maps each output tensor to the shape TensorRT reports for it with the input at
    the profile's max, and its dtype.
    """
    plans = [BufferPlan(input_name, True, np.dtype(np.uint8), profile.max)]
    plans.extend(
        BufferPlan(name, False, np.dtype(dtype), tuple(shape))
        for name, (shape, dtype) in sorted(outputs.items())
    )
    return plans


def plan_station_buffers(
    profile: ProfileShapes, input_name: str, output_name: str, stride: int
) -> list[BufferPlan]:
    """The buffers the station's model needs for a profile, knowing its output stride."""
    out = output_shape(profile.max, stride=stride)
    return plan_buffers(profile, {output_name: (out, np.dtype(np.float32))}, input_name)


def plan_reduced_buffers(
    profile: ProfileShapes,
    names: tuple[str, str, str],
    stride: int,
    score_dtype: np.dtype,
) -> list[BufferPlan]:
    """Buffers of the reduced graph: uint8 input, uint8 ``cls`` and ``score`` at the max.

    ``names`` is (input, class output, score output); a cell copies back 1 + score bytes.
    """
    out = reduced_output_shape(profile.max, stride=stride)
    inp, cls_name, score_name = names
    outputs = {cls_name: (out, np.dtype(np.uint8)), score_name: (out, np.dtype(score_dtype))}
    return plan_buffers(profile, outputs, inp)
