"""Graph surgery at load time: the model registers the board under test itself (GridSample).

On a GPU station the full-frame warp onto the template was the CPU's largest single cost after
registration (1.3 ms at 640, 3.8 ms at 1024 on the H200's host). With this edit the graph takes
the *unwarped* uint8 batch ``boards`` and a float32 ``affine`` ``[N, 2, 3]``, the registration's
inverse map (template pixel -> frame pixel, as ``cv2.warpAffine`` with ``WARP_INVERSE_MAP`` uses
it) already normalised to GridSample's ``align_corners=1`` coordinates (:func:`device_affine`).
Channel 0 is resampled (bilinear, border padding: the replicated border ``cv2.BORDER_REPLICATE``
gives), rounded back to uint8 as OpenCV's warp does, and fed with channel 1 (the template) to the
network unchanged. An identity ``affine`` reproduces the input exactly, so a caller that warped
on the CPU (tiled recipes, DeepPCB pairs) passes the identity.

Bilinear GridSample and OpenCV's fixed-point ``INTER_LINEAR`` (weights in 1/32 px) round
differently: a pixel may differ by a grey level or two where the image has strong edges
(measured in tests/inference/test_warp.py and docs/benchmarks.md ("issue 15, third round")).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from aoi.errors import InferenceError, ModelError
from aoi.inference.base import INPUT_NAME
from aoi.regplan import normalised_warp

if TYPE_CHECKING:  # onnx is needed only where the graph is edited
    import onnx

#: The second input of a warping model: float32 [N, 2, 3] normalised inverse affine maps.
AFFINE_NAME = "affine"
#: A frame-taking model's inputs (``warp_model(frame=True)``): the unpadded frame and the
#: padded template side.
FRAME_NAME = "frame"
REFERENCE_NAME = "reference"
_INNER = "boards_registered"
#: The warp's last node: an FP16 model keeps everything up to it in FP32 (aoi/inference/fp16.py).
LAST_NODE = "w_registered"


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def has_warp(model: onnx.ModelProto) -> bool:
    """Whether ``model`` already takes the ``affine`` input."""
    return any(i.name == AFFINE_NAME for i in model.graph.input)


def warp_model(model: onnx.ModelProto, *, frame: bool = False) -> onnx.ModelProto:
    """A copy of ``model`` that takes the unwarped ``boards`` and ``affine`` and warps channel 0.

    With ``frame`` the copy takes, in place of ``boards``, the frame as the camera gave it
    (``frame``, uint8 [h, w], one board) and the template side (``reference``, uint8
    [1, 1, H, W], the network's padded size): the warp samples the frame (border padding, as
    padding a whole frame by repeating its edges gives) onto the reference's grid, so the host
    neither pads nor stacks the frame and a device-resident reference is uploaded once
    (aoi/inference/frame_input.py). ``affine`` is then normalised to the frame's size
    (:func:`device_affine` with the frame's height and width).
    """
    import onnx
    from onnx import TensorProto, helper

    opset = _opset(model)
    if opset < 16:
        msg = f"the device warp needs opset 16 or later (GridSample), the model has {opset}"
        raise ModelError(msg)
    inp = next((i for i in model.graph.input if i.name == INPUT_NAME), None)
    if inp is None or len(inp.type.tensor_type.shape.dim) != 4:
        msg = f"the device warp needs a 4-d input {INPUT_NAME!r}"
        raise ModelError(msg)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    for node in g.node:  # the network now reads the registered batch
        node.input[:] = [_INNER if name == INPUT_NAME else name for name in node.input]
    if frame:
        nodes = [
            helper.make_node("Unsqueeze", [FRAME_NAME, "w_axes01"], ["w_frame4"]),
            *_warp_nodes(opset, "w_frame4", REFERENCE_NAME, REFERENCE_NAME),
        ]
    else:
        nodes = _warp_nodes(opset)
    const = [
        helper.make_tensor("w_split", TensorProto.INT64, [2], [1, 1]),
        helper.make_tensor("w_zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("w_one", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("w_max", TensorProto.FLOAT, [], [255.0]),
        helper.make_tensor("w_i2", TensorProto.INT64, [1], [2]),
        helper.make_tensor("w_i4", TensorProto.INT64, [1], [4]),
        helper.make_tensor("w_last", TensorProto.INT64, [1], [-1]),
        helper.make_tensor("w_aff_shape", TensorProto.INT64, [4], [-1, 1, 1, 6]),
        helper.make_tensor("w_six", TensorProto.INT64, [6], [1] * 6),
    ]
    if frame:
        const.append(helper.make_tensor("w_axes01", TensorProto.INT64, [2], [0, 1]))
    g.initializer.extend(const)
    for i, node in enumerate(nodes):  # the warp runs before every node of the network
        g.node.insert(i, node)
    first = inp.type.tensor_type.shape.dim[0].dim_param or "N"
    if frame:
        g.input.remove(next(i for i in g.input if i.name == INPUT_NAME))
        u8 = TensorProto.UINT8
        g.input.append(helper.make_tensor_value_info(FRAME_NAME, u8, ["h", "w"]))
        g.input.append(helper.make_tensor_value_info(REFERENCE_NAME, u8, [1, 1, "H", "W"]))
        first = 1
    g.input.append(helper.make_tensor_value_info(AFFINE_NAME, TensorProto.FLOAT, [first, 2, 3]))
    try:
        onnx.checker.check_model(out)
    except onnx.checker.ValidationError as err:
        msg = f"the warped model does not check ({err})"
        raise ModelError(msg) from err
    return out


def _warp_nodes(
    opset: int, test: str = "w_test_u8", template: str = "w_tmpl_u8", size_of: str = INPUT_NAME
) -> list[onnx.NodeProto]:
    """Nodes from ``test`` (uint8 [N, 1, h, w], unwarped), ``template`` (uint8 [N, 1, H, W]) and
    ``affine`` to ``boards_registered``, the output grid as large as ``size_of``'s last two
    dimensions; by default ``test`` and ``template`` are the two channels of ``boards``."""
    from onnx import TensorProto, helper

    n = helper.make_node
    mode = "linear" if opset >= 20 else "bilinear"
    split = [n("Split", [INPUT_NAME, "w_split"], ["w_test_u8", "w_tmpl_u8"], axis=1)]
    return [
        *(split if size_of == INPUT_NAME else []),
        n("Cast", [test], ["w_test"], to=TensorProto.FLOAT),
        # x and y of every output (template) pixel, [H, W] each.
        n("Shape", [size_of], ["w_shape"]),
        n("Slice", ["w_shape", "w_i2", "w_i4"], ["w_hw"]),
        n("Split", ["w_hw", "w_split"], ["w_h", "w_w"]),
        n("Cast", ["w_h"], ["w_hf1"], to=TensorProto.FLOAT),
        n("Cast", ["w_w"], ["w_wf1"], to=TensorProto.FLOAT),
        n("Squeeze", ["w_hf1"], ["w_hf"]),
        n("Squeeze", ["w_wf1"], ["w_wf"]),
        n("Range", ["w_zero", "w_wf", "w_one"], ["w_xs"]),  # [W]
        n("Range", ["w_zero", "w_hf", "w_one"], ["w_ys"]),  # [H]
        n("Unsqueeze", ["w_ys", "w_last"], ["w_ycol"]),  # [H, 1]
        n("Expand", ["w_xs", "w_hw"], ["w_gx"]),  # [H, W]
        n("Expand", ["w_ycol", "w_hw"], ["w_gy"]),
        # grid[n, y, x] = affine[n] @ (x, y, 1), elementwise in float32: a MatMul here ran in
        # TF32 on Ampere and later GPUs (coordinates off by up to 0.3 px at 640) and, batched,
        # copied pointer arrays that a CUDA graph capture refuses.
        n("Unsqueeze", ["w_gx", "w_last"], ["w_gx3"]),  # [H, W, 1]
        n("Unsqueeze", ["w_gy", "w_last"], ["w_gy3"]),
        n("Reshape", [AFFINE_NAME, "w_aff_shape"], ["w_aff"]),  # [N, 1, 1, 6]
        n("Split", ["w_aff", "w_six"], ["w_a0", "w_a1", "w_a2", "w_a3", "w_a4", "w_a5"], axis=3),
        n("Mul", ["w_gx3", "w_a0"], ["w_u0"]),  # [N, H, W, 1]
        n("Mul", ["w_gy3", "w_a1"], ["w_u1"]),
        n("Add", ["w_u0", "w_u1"], ["w_u01"]),
        n("Add", ["w_u01", "w_a2"], ["w_u"]),
        n("Mul", ["w_gx3", "w_a3"], ["w_v0"]),
        n("Mul", ["w_gy3", "w_a4"], ["w_v1"]),
        n("Add", ["w_v0", "w_v1"], ["w_v01"]),
        n("Add", ["w_v01", "w_a5"], ["w_v"]),
        n("Concat", ["w_u", "w_v"], ["w_grid"], axis=-1),  # [N, H, W, 2]
        n(
            "GridSample",
            ["w_test", "w_grid"],
            ["w_warped"],
            mode=mode,
            padding_mode="border",
            align_corners=1,
        ),
        # Back to uint8 as cv2.warpAffine rounds (to nearest) and saturates.
        n("Round", ["w_warped"], ["w_round"]),
        n("Clip", ["w_round", "w_zero", "w_max"], ["w_clip"]),
        n("Cast", ["w_clip"], ["w_test_reg"], to=TensorProto.UINT8),
        n("Concat", ["w_test_reg", template], [_INNER], axis=1, name=LAST_NODE),
    ]


def device_affine(transform: np.ndarray | None, height: int, width: int) -> np.ndarray:
    """The float32 [2, 3] map GridSample needs for ``transform`` (template pixel -> frame pixel,
    ``WARP_INVERSE_MAP``'s convention) on an ``height`` x ``width`` input; None is the identity.

    GridSample with ``align_corners=1`` reads normalised coordinates ``u = 2 x / (W - 1) - 1``,
    so the map is ``S @ [transform; 0 0 1]`` with ``S`` that scaling.
    """
    return normalised_warp(np.eye(2, 3) if transform is None else transform, (height, width))


def device_affines(
    transforms: list[np.ndarray | None], batch: int, height: int, width: int
) -> np.ndarray:
    """A float32 [batch, 2, 3] ``affine`` input: one map per board, identity for the rest."""
    out = np.repeat(device_affine(None, height, width)[None], batch, axis=0)
    for i, t in enumerate(transforms[:batch]):
        out[i] = device_affine(t, height, width)
    return out


def affine_feed(affine: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """The ``affine`` input for a batch of ``shape`` [N, 2, H, W]: ``affine``'s maps for its first
    boards, the identity for the rest (padding, or every board when ``affine`` is None)."""
    n, _c, h, w = shape
    out = np.repeat(device_affine(None, h, w)[None], n, axis=0)
    if affine is not None:
        affine = np.asarray(affine, np.float32)
        if affine.ndim != 3 or affine.shape[1:] != (2, 3) or affine.shape[0] > n:
            msg = f"affine must be [N <= {n}, 2, 3], got {list(affine.shape)}"
            raise InferenceError(msg)
        out[: affine.shape[0]] = affine
    return out
