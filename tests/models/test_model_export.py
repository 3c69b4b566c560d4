"""The shipped defect models honour the station's ONNX contract and behave on synthetic boards.

The contract tests need only onnxruntime (the station's CI has no torch); the export round-trip
test needs torch and is skipped with the reason ``torch not installed`` where it is missing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from aoi.sources.synthetic import boardgen

REPO = Path(__file__).resolve().parents[2]
#: Every model the station ships; the recipes point at the newest.
MODELS = sorted((REPO / "models").glob("aoi-defect-v*.onnx"))
NUM_CLASSES = 7
SPURIOUS_COPPER, PIN_HOLE = 5, 6


@pytest.fixture(scope="module", params=MODELS, ids=lambda p: p.stem)
def session(request: pytest.FixtureRequest) -> ort.InferenceSession:
    model: Path = request.param
    assert model.is_file(), f"{model} is missing: the station ships it"
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def _probs(session: ort.InferenceSession, test: np.ndarray, template: np.ndarray) -> np.ndarray:
    boards = np.stack([test, template])[None].astype(np.uint8)
    return session.run(["probs"], {"boards": boards})[0][0]


def test_input_is_uint8_boards_with_dynamic_batch_height_width(
    session: ort.InferenceSession,
) -> None:
    (inp,) = session.get_inputs()
    assert inp.name == "boards"
    assert inp.type == "tensor(uint8)"
    assert len(inp.shape) == 4
    assert inp.shape[1] == 2
    for axis in (0, 2, 3):
        assert not isinstance(inp.shape[axis], int), f"axis {axis} is fixed: {inp.shape}"


@pytest.mark.parametrize(("batch", "height", "width"), [(1, 256, 320), (2, 640, 640)])
def test_output_is_a_softmax_over_seven_classes_at_a_fixed_stride(
    session: ort.InferenceSession, batch: int, height: int, width: int
) -> None:
    (out,) = session.get_outputs()
    assert out.name == "probs"
    assert out.type == "tensor(float)"
    rng = np.random.default_rng(0)
    boards = rng.integers(0, 256, size=(batch, 2, height, width), dtype=np.uint8)
    probs = session.run(["probs"], {"boards": boards})[0]
    assert probs.dtype == np.float32
    assert probs.shape[:2] == (batch, NUM_CLASSES)
    stride = height // probs.shape[2]
    assert stride in (2, 4)
    assert probs.shape[2:] == (height // stride, width // stride)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert probs.min() >= 0.0


def test_a_clean_pair_raises_no_defect_pixel(session: ort.InferenceSession) -> None:
    template = boardgen.golden_board(320, 320, seed=11, look="binary")
    probs = _probs(session, template, template)
    assert probs[1:].max() < 0.5


@pytest.mark.parametrize("class_id", [SPURIOUS_COPPER, PIN_HOLE])
def test_an_injected_defect_gives_a_component_over_its_truth_box(
    session: ort.InferenceSession, class_id: int
) -> None:
    rng = np.random.default_rng(class_id)
    layout = boardgen.make_copper_layout(320, 320, seed=21)
    template = boardgen.render(layout, "binary", rng, noise_sigma=4.0)
    copper, truth = boardgen.inject_defects(layout, rng, 1, classes=[class_id])
    assert truth.class_ids.tolist() == [class_id]
    test = boardgen.render(copper, "binary", rng, noise_sigma=4.0)
    probs = _probs(session, test, template)
    stride = test.shape[0] // probs.shape[1]
    count, _, stats, _ = cv2.connectedComponentsWithStats(
        (probs[class_id] >= 0.5).astype(np.uint8), connectivity=8
    )
    x0, y0, x1, y1 = truth.bbox_xyxy_px[0]
    overlapping = [
        (x, y, w, h)
        for x, y, w, h, area in stats[1:count]
        if area >= 4
        and x * stride < x1
        and (x + w) * stride > x0
        and y * stride < y1
        and (y + h) * stride > y0
    ]
    assert overlapping, f"no {class_id} component over truth box {truth.bbox_xyxy_px[0]}"


def test_export_round_trip_of_an_untrained_tiny_net_matches_pytorch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="torch not installed", exc_type=ImportError)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # models/ is a folder of scripts, not an installed package
    from models.export import export_onnx, validate_onnx
    from models.net import AoiDefectNet, NetConfig

    torch.manual_seed(0)
    net = AoiDefectNet(
        NetConfig(
            stem_channels=8, mid_channels=8, deep_channels=16, mid_blocks=1, deep_dilations=(2,)
        )
    )
    with torch.no_grad():  # non-trivial batch-norm statistics, so folding them is exercised
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "tiny.onnx"
    export_onnx(net, path)
    assert validate_onnx(net, path, atol=1e-4) <= 1e-4
