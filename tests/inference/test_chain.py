"""The network queued behind registration on one stream (aoi/inference/chain.py).

Here, without CUDA, a frame slot on ONNX Runtime's CPU device is handed a stand-in for the
queued runs (a CUDA stream and its events cannot exist here): the slot must return a queued
board's maps untouched, run every other board itself, and wait for the queue before it writes
its buffers. The CUDA tests run the real chain on the GPU machine and skip here.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_frame_input import _board, _maps, _slot
from test_kernreg import HAS_DEVICE, HAS_ORT_CUDA

from aoi.inference.chain import chain_status
from aoi.inference.cuda_options import ENV_VAR, CudaOptions
from aoi.inference.frame_input import SharedFrame
from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.inference.warp import device_affine
from aoi.pipeline import Pipeline, run_cycles
from aoi.pipelined import run_pipelined
from aoi.recipe import load_recipe
from aoi.sources.synthetic import SyntheticSource
from aoi.types import ClassMaps, ErrorKind, FrameBatch

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "board-a-640.toml"


class _Queue:
    """Stands in for :class:`aoi.inference.chain.ChainedRuns` (needs CUDA): maps queued for
    one frame array, and a record of the calls."""

    def __init__(self, frame: np.ndarray, maps: ClassMaps) -> None:
        self.frame, self.maps = frame, maps
        self.calls: list[str] = []

    def take(self, batch: FrameBatch) -> ClassMaps | None:
        self.calls.append("take")
        return self.maps if batch.registered and batch.frame is self.frame else None

    def drain(self) -> None:
        self.calls.append("drain")


def test_the_chain_and_its_capture_can_be_turned_off_by_name() -> None:
    queued = CudaOptions.parse("graph")
    assert CudaOptions().chain and queued.chain and not queued.capture
    off = CudaOptions.parse("graph,nochain")
    assert not off.chain and off.label == "graph,nochain"
    assert CudaOptions.parse(off.label) == off
    on = CudaOptions.parse("graph,capture")
    assert on.chain and on.capture and on.label == "graph,capture"
    assert CudaOptions.parse(on.label) == on
    assert chain_status(on).endswith("as one graph where CUDA allows")
    assert chain_status(queued).endswith("call by call")
    assert chain_status(off) == "AOI_ORT_CUDA=nochain"


def test_a_slot_returns_the_queued_boards_maps_and_runs_any_other_board_itself() -> None:
    fb = replace(_board(), registered=True)
    shared = SharedFrame(fb.frame.shape, "cpu")
    slot = _slot(shared)
    h, w = slot.output_shape[1:]
    marker = ClassMaps(np.full((1, h, w), 7, np.uint8), np.full((1, h, w), 0.25, np.float32))
    slot.queued = _Queue(fb.frame, marker)
    with shared.lock:
        shared.upload(fb.frame)  # as registration does
        got = slot.run(fb, None)
    assert got is marker  # the queued run's maps: the slot did not run the network
    assert slot.queued.calls == ["take"]
    assert not shared.holds(fb.frame)  # used: a later board never trusts it by identity
    other = FrameBatch(fb.frame.copy(), fb.reference, 1, registered=True)
    with shared.lock:
        mine = slot.run(other, None)
    # Not queued for this array: the queue was drained before the slot wrote its buffers.
    assert slot.queued.calls == ["take", "take", "drain"]
    np.testing.assert_array_equal(mine.classes, _maps(other)[0])
    assert not np.array_equal(mine.classes, marker.classes)


def test_an_unregistered_board_is_never_handed_a_queued_run() -> None:
    fb = _board()  # a pair's test image: not registered
    shared = SharedFrame(fb.frame.shape, "cpu")
    slot = _slot(shared)
    h, w = slot.output_shape[1:]
    slot.queued = _Queue(fb.frame, ClassMaps(np.zeros((1, h, w), np.uint8), np.zeros((1, h, w))))
    with shared.lock:
        got = slot.run(fb, None)
    np.testing.assert_array_equal(got.classes, _maps(fb)[0])
    assert slot.queued.calls == ["take", "drain"]


def test_the_slot_counts_its_reference_uploads() -> None:
    fb = _board()
    shared = SharedFrame(fb.frame.shape, "cpu")
    slot = _slot(shared)
    assert slot.reference_uploads == 0 and not slot.reference_fits(fb)
    with shared.lock:
        slot.run(fb, None)
        slot.run(fb, None)  # the same reference: not uploaded again
    assert slot.reference_uploads == 1 and slot.reference_fits(fb)
    newer = FrameBatch(fb.frame, fb.reference, 2)
    assert not slot.reference_fits(newer)
    with shared.lock:
        slot.run(newer, None)
    assert slot.reference_uploads == 2


# -- on the GPU machine ------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(
    not (HAS_DEVICE and HAS_ORT_CUDA), reason="needs onnxruntime-gpu, cuda-python and a device"
)


def _cycle(mode: str, pipelined: bool = False, boards: int = 16):
    """Results of ``boards`` synthetic boards on the CUDA backend with ``AOI_ORT_CUDA=mode``,
    the backend's kernels, and the last board's frame slot."""
    loaded = load_recipe(RECIPE)
    before = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = mode
    try:
        profile = loaded.recipe.geometry.profile
        with OnnxRuntimeBackend(loaded.model_path, profile, device="cuda", threads=1) as be:
            pipeline = Pipeline(loaded, be)
            assert pipeline.registrar.steps == "cuda-kernels"
            got: list = []
            run = run_pipelined if pipelined else run_cycles
            with SyntheticSource(pipeline.template, loaded.recipe.synthetic, seed=5) as source:
                run(pipeline, source, cycles=boards, on_result=got.append)
            runs = be._steps[-1].chain.runs
            if runs is None:
                return got, 0, None, False
            return got, runs.taken, runs._slot.affine.numpy().copy(), runs.captured
    finally:
        if before is None:
            os.environ.pop(ENV_VAR)
        else:
            os.environ[ENV_VAR] = before


def _same(a: list, b: list) -> None:
    assert [r.verdict for r in a] == [r.verdict for r in b]
    for x, y in zip(a, b, strict=True):
        assert x.registration is not None and y.registration is not None
        np.testing.assert_array_equal(x.registration.transform, y.registration.transform)
        np.testing.assert_array_equal(x.defects.bbox_xyxy_px, y.defects.bbox_xyxy_px)
        np.testing.assert_array_equal(x.defects.class_ids, y.defects.class_ids)
        np.testing.assert_array_equal(x.defects.scores, y.defects.scores)


@needs_cuda
@pytest.mark.parametrize("mode", ["graph,capture", "graph"], ids=["captured", "queued"])
@pytest.mark.parametrize("pipelined", [False, True], ids=["sequential", "pipelined"])
def test_the_chained_cycle_answers_as_the_unchained_one(mode: str, pipelined: bool) -> None:
    chained, taken, affine, captured = _cycle(mode, pipelined)
    plain, none_taken, _, _ = _cycle("graph,nochain", pipelined)
    _same(chained, plain)
    assert none_taken == 0
    assert captured == (mode == "graph,capture")  # refused nowhere it should work
    # Every board after the first (whose slot did not exist when it registered) took its
    # queued run; the pipelined loop may register the second before the first built the slot.
    assert taken >= len(chained) - (2 if pipelined else 1)
    assert sum(len(r.defects) for r in chained) > 3
    # The device wrote the very map the host computes from the last board's registration.
    last = chained[-1]
    assert affine is not None and last.frame is not None
    hw = last.frame.image.shape[:2]
    np.testing.assert_array_equal(affine[0], device_affine(last.registration.transform, *hw))


@needs_cuda
@pytest.mark.parametrize("mode", ["graph,capture", "graph"], ids=["captured", "queued"])
def test_a_refused_board_leaves_the_next_board_its_own_run(mode: str) -> None:
    """A board registration refuses never takes its queued run; the next board takes its
    own (the ring is matched by frame array, not by order), and the backend closes with a
    refused board's run still queued."""
    loaded = load_recipe(RECIPE)
    with OnnxRuntimeBackend(loaded.model_path, loaded.recipe.geometry.profile) as be:
        template = Pipeline(loaded, be).template
    with SyntheticSource(template, loaded.recipe.synthetic, seed=5) as source:
        frames = [source.grab(2.0) for _ in range(4)]
    blank = replace(frames[1], image=np.zeros_like(frames[1].image))
    got: dict = {}
    for each in (mode, "graph,nochain"):
        os.environ[ENV_VAR] = each
        try:
            profile = loaded.recipe.geometry.profile
            with OnnxRuntimeBackend(loaded.model_path, profile, device="cuda", threads=1) as be:
                pipeline = Pipeline(loaded, be)
                # The last board's run is queued and never taken: closing waits for it.
                boards = (frames[0], blank, *frames[2:], blank)
                got[each] = [pipeline.inspect(f) for f in boards]
                runs = be._steps[-1].chain.runs
                got[each + " taken"] = 0 if runs is None else runs.taken
        finally:
            os.environ.pop(ENV_VAR)
    chained, plain = got[mode], got["graph,nochain"]
    assert chained[1].error_kind is ErrorKind.REGISTRATION
    assert chained[-1].error_kind is ErrorKind.REGISTRATION
    assert got[mode + " taken"] == 2 and got["graph,nochain taken"] == 0  # boards 3 and 4
    for a, b in zip(chained, plain, strict=True):
        assert a.verdict == b.verdict and a.error_kind == b.error_kind
        np.testing.assert_array_equal(a.defects.bbox_xyxy_px, b.defects.bbox_xyxy_px)
        np.testing.assert_array_equal(a.defects.scores, b.defects.scores)
