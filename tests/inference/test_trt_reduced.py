"""The TensorRT backend's reduced-output logic, without TensorRT: shapes, buffers, parity."""

from __future__ import annotations

import numpy as np
import pytest

from aoi.errors import ModelError
from aoi.inference.parity import compare
from aoi.inference.tensorrt.cache import CACHE_FORMAT
from aoi.inference.tensorrt.plan import (
    ProfileShapes,
    plan_reduced_buffers,
    reduced_output_shape,
    stride_of,
)
from aoi.types import ClassMaps


def test_the_stride_comes_from_the_reduced_class_map_too() -> None:
    assert stride_of((1, 2, 640, 640), (1, 160, 160), "m.engine") == 4
    assert stride_of((1, 2, 640, 640), (1, 7, 160, 160), "m.engine") == 4
    assert reduced_output_shape((8, 2, 1024, 1024), stride=4) == (8, 256, 256)
    with pytest.raises(ModelError, match=r"m\.engine: output"):
        stride_of((2, 2, 640, 640), (1, 160, 160), "m.engine")


def test_reduced_buffers_copy_back_five_bytes_a_cell_at_the_profiles_max() -> None:
    shapes = ProfileShapes((1, 2, 512, 512), (8, 2, 1024, 1024), (8, 2, 1024, 1024))
    inp, cls, score = plan_reduced_buffers(shapes, ("boards", "cls", "score"), 4, np.dtype("f4"))
    assert (inp.name, cls.name, score.name) == ("boards", "cls", "score")
    assert inp.nbytes == 8 * 2 * 1024 * 1024
    assert cls.dtype == np.uint8 and cls.max_shape == (8, 256, 256)
    assert cls.nbytes + score.nbytes == 8 * 256 * 256 * 5


def test_engines_cached_before_the_reduced_graph_are_rebuilt() -> None:
    assert CACHE_FORMAT >= 2  # format 1 engines end in probs, which the backend no longer binds


def test_parity_compares_full_maps_with_class_maps() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 7, 8, 8))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    same = ClassMaps(probs.argmax(axis=1).astype(np.uint8), probs.max(axis=1).astype(np.float32))
    assert compare([(probs, same)], "fp32").passed
    moved = ClassMaps(same.classes, same.scores + np.float32(0.05))
    report = compare([(probs, moved)], "fp32")
    assert not report.passed and "max |diff|" in report.text()
    flipped = ClassMaps((same.classes + 1) % 7, same.scores)
    assert compare([(probs, flipped)], "fp32").argmax_agreement == 0.0
