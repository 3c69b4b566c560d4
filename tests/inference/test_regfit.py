"""Registration's fit inside the device graph (aoi/inference/regfit.py): each graph piece against
the host's own function (aoi/vision/patchreg.py, aoi/regplan.py) on ONNX Runtime's CPU provider,
and the one-graph registration against the step-by-step one, in one run per frame."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from aoi.inference import devreg, regfit
from aoi.inference.devreg import DeviceSteps
from aoi.inference.regraph import GraphBuilder
from aoi.recipe import RegistrationSettings
from aoi.regplan import normalised_warp, peak_shifts
from aoi.sources.synthetic.boardgen import golden_board
from aoi.vision import patchreg
from aoi.vision.registration import Registrar


def _run(g: GraphBuilder, outputs: list[tuple[str, list[int]]], feeds: dict) -> list[np.ndarray]:
    for name, shape in outputs:
        g.output(name, np.float32, shape)
    session = ort.InferenceSession(g.model(), providers=["CPUExecutionProvider"])
    return session.run([name for name, _ in outputs], feeds)


def _warp_out(g: GraphBuilder, warp: regfit.Warp) -> str:
    return g.op("Reshape", g.op("Concat", *warp, axis=1), g.ints(2, 3))


def _warp_in(g: GraphBuilder, warp: np.ndarray) -> regfit.Warp:
    parts = [g.const(np.full((1, 1), v, np.float32)) for v in warp.ravel()]
    return parts[0], parts[1], parts[2], parts[3], parts[4], parts[5]


def test_the_peak_graph_finds_the_hosts_peaks_also_across_the_wrap() -> None:
    rng = np.random.default_rng(3)
    k, h, w = 6, 32, 40
    surfaces = rng.normal(0, 0.01, (k, h, w)).astype(np.float32)
    # Peaks inside, on every edge and in a corner, where the 3x3 centroid wraps around.
    for i, (y, x) in enumerate([(5, 7), (0, 20), (h - 1, 3), (12, 0), (9, w - 1), (0, 0)]):
        surfaces[i, y, x] = 1.0
        surfaces[i, (y + 1) % h, x] = 0.4
        surfaces[i, y, (x - 1) % w] = 0.3
    g = GraphBuilder("onnx")
    g.input("s", np.float32, [k, h, w])
    sx, sy = regfit.peak(g, "s", k, h, w)
    (got,) = _run(g, [(g.op("Concat", sx, sy, axis=1), [k, 2])], {"s": surfaces})
    want = peak_shifts(surfaces)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert (want < 0).any()  # the signed wrap was exercised


@pytest.mark.parametrize("outliers", [0, 1, 2])
def test_the_fit_graph_is_the_hosts_robust_rigid_fit(outliers: int) -> None:
    rng = np.random.default_rng(outliers)
    centres = rng.uniform(40, 600, (9, 2))
    warp = cv2.getRotationMatrix2D((320, 320), 0.7, 1.0)
    warp[:, 2] += (2.5, -1.25)
    shift = rng.normal(0, 0.05, (9, 2))
    # Patches that found the wrong peak, off in different directions.
    signs = np.array([[1, -1], [-1, 1]])[:outliers]
    shift[:outliers] += rng.uniform(3, 8, (outliers, 2)) * signs
    g = GraphBuilder("onnx")
    g.input("shift", np.float32, [9, 2])
    sx, sy = g.split("shift", 2, axis=1)
    fitted = regfit.fit_pairs(g, centres, (sx, sy), _warp_in(g, warp))
    (got,) = _run(g, [(_warp_out(g, fitted), [2, 3])], {"shift": shift.astype(np.float32)})
    want = patchreg._fit_pairs(centres, shift.astype(np.float32).astype(np.float64), warp)
    corners = np.array([[0, 0], [639, 0], [0, 639], [639, 639]], np.float64)
    apart = corners @ (got - want)[:, :2].T + (got - want)[:, 2]
    assert np.abs(apart).max() < 2e-3
    # Without the outlier rounds the outliers would pull the fit far off.
    plain = patchreg._fit_rigid(centres, (centres + shift) @ warp[:, :2].T + warp[:, 2])
    if outliers:
        assert np.abs(corners @ (plain - want)[:, :2].T + (plain - want)[:, 2]).max() > 0.1


def test_rescale_and_normalise_are_the_hosts() -> None:
    warp = cv2.getRotationMatrix2D((100, 80), -1.1, 1.0)
    warp[:, 2] += (3.0, 4.5)
    g = GraphBuilder("onnx")
    up = _warp_out(g, regfit.rescale(g, _warp_in(g, warp), 4.0))
    norm = _warp_out(g, regfit.normalised(g, _warp_in(g, warp), (480, 640)))
    got_up, got_norm = _run(g, [(up, [2, 3]), (norm, [2, 3])], {})
    np.testing.assert_allclose(got_up, patchreg._rescale(warp, 4.0), atol=1e-4)
    np.testing.assert_allclose(got_norm, normalised_warp(warp, (480, 640)), atol=1e-6)


@pytest.mark.parametrize(("height", "width"), [(640, 640), (3000, 4096)])
def test_one_graph_answers_as_the_steps_do_in_one_run_a_frame(
    height: int, width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = golden_board(height, width, 5, "binary")
    one, steps = (Registrar(board, RegistrationSettings()) for _ in range(2))
    one.use_device(lambda plan: DeviceSteps(plan, device="cpu"))
    steps.use_device(lambda plan: DeviceSteps(plan, device="cpu", fused=False))
    runs = {"n": 0}
    plain = devreg._Bound.run

    def counted(self: devreg._Bound, *fetch: str) -> dict[str, np.ndarray]:
        runs["n"] += 1
        return plain(self, *fetch)

    monkeypatch.setattr(devreg._Bound, "run", counted)
    rng = np.random.default_rng(2)
    for angle, dx, dy in [(0.0, 0.0, 0.0), (0.4, 3.3, -2.1), (-1.2, -5.1, 4.2)]:
        moved = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
        moved[:, 2] += (dx, dy)
        frame = cv2.warpAffine(board, moved, (width, height), borderMode=cv2.BORDER_REPLICATE)
        frame = np.clip(frame + rng.normal(0, 4, frame.shape), 0, 255).astype(np.uint8)
        before = runs["n"]
        a = one.register(frame)
        assert runs["n"] - before == 1
        b = steps.register(frame)
        assert runs["n"] - before >= 4  # coarse, patches, at least two gradient steps
        np.testing.assert_allclose(a.transform, b.transform, atol=2e-3)
        assert abs(a.correlation - b.correlation) < 1e-4
        np.testing.assert_allclose(a.transform, moved, atol=0.05)
