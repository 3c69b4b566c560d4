"""Training targets: seams keep same-class neighbours apart; the loss decodes what numpy decodes."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # models/ is a folder of scripts, not an installed package

from models.dataset import PairSample  # noqa: E402
from models.deeppcb import DeepPcbConfig, DeepPcbPairs, SplitLine  # noqa: E402
from models.targets import (  # noqa: E402
    EDGE_BAND,
    IGNORE,
    SEAM,
    close_pairs,
    decode_target,
    seam_cells,
    target_with_ignore,
)

STRIDE = 2


def _sample(boxes: list[list[int]], classes: list[int], side: int = 96) -> PairSample:
    image = np.zeros((side, side), np.uint8)
    return PairSample(image, image, np.array(boxes, np.float32), np.array(classes, np.int64))


def _components(decoded: np.ndarray, cls: int) -> int:
    count, _ = cv2.connectedComponents((decoded == cls).astype(np.uint8), connectivity=8)
    return count - 1


# boxes (inclusive corners), classes, seam expected
SEAM_CASES = [
    ("side by side, 3 px apart", [[10, 10, 29, 29], [33, 12, 52, 31]], [4, 4], True),
    ("touching edges", [[10, 10, 29, 29], [30, 10, 49, 29]], [4, 4], True),
    ("stacked, 7 px apart", [[10, 10, 29, 29], [12, 37, 31, 56]], [1, 1], True),
    ("corner to corner, 2 px", [[10, 10, 29, 29], [32, 32, 51, 51]], [2, 2], True),
    ("12 px apart: at the limit", [[10, 10, 29, 29], [42, 10, 61, 29]], [3, 3], True),
    ("13 px apart: too far", [[10, 10, 29, 29], [43, 10, 62, 29]], [3, 3], False),
    ("overlapping", [[10, 10, 29, 29], [25, 12, 44, 31]], [4, 4], False),
    ("different classes", [[10, 10, 29, 29], [33, 12, 52, 31]], [4, 2], False),
]


@pytest.mark.parametrize(
    ("boxes", "classes", "expected"),
    [case[1:] for case in SEAM_CASES],
    ids=[case[0] for case in SEAM_CASES],
)
def test_seams_only_between_close_same_class_boxes(
    boxes: list[list[int]], classes: list[int], expected: bool
) -> None:
    sample = _sample(boxes, classes)
    mask = seam_cells(sample.boxes_xyxy_px, sample.class_ids, (48, 48), STRIDE, 12.0)
    assert bool(mask.any()) is expected
    assert (len(list(close_pairs(sample.boxes_xyxy_px, sample.class_ids, 12.0))) == 1) is expected


@pytest.mark.parametrize(
    ("boxes", "classes"),
    [case[1:3] for case in SEAM_CASES if case[3]],
    ids=[case[0] for case in SEAM_CASES if case[3]],
)
def test_a_separating_model_sees_two_defects_where_the_plain_target_has_one_blob(
    boxes: list[list[int]], classes: list[int]
) -> None:
    sample = _sample(boxes, classes)
    coded = target_with_ignore(sample, np.zeros((0, 4)), STRIDE, edge_band_cells=1, seam_gap_px=12)
    cls = classes[0]
    apart = decode_target(coded, ignore_edges=False, separate=True)
    assert _components(apart, cls) == 2
    plain = decode_target(coded, ignore_edges=False, separate=False)
    no_seam = target_with_ignore(sample, np.zeros((0, 4)), STRIDE, edge_band_cells=1)
    np.testing.assert_array_equal(plain, decode_target(no_seam, ignore_edges=False))
    # the seam takes at most the facing edge cell of each box, never the box's inside
    for x0, y0, x1, y1 in boxes:
        inner = apart[y0 // STRIDE + 1 : y1 // STRIDE, x0 // STRIDE + 1 : x1 // STRIDE]
        assert (inner == cls).all()


def test_ignore_wins_over_seam_and_band_flags() -> None:
    sample = _sample([[10, 10, 29, 29], [33, 12, 52, 31]], [4, 4])
    coded = target_with_ignore(sample, np.array([[30, 10, 33, 20]]), STRIDE, 1, 12)
    assert coded[5:11, 15:17].max() == IGNORE
    assert (coded[coded != IGNORE] & SEAM).any() and (coded[coded != IGNORE] & EDGE_BAND).any()
    for separate in (False, True):
        decoded = decode_target(coded, ignore_edges=True, separate=separate)
        assert (decoded[coded == IGNORE] == IGNORE).all()
        assert set(np.unique(decoded)) <= {0, 4, IGNORE}


@pytest.mark.parametrize("separate", [False, True])
@pytest.mark.parametrize("ignore_edges", [False, True])
def test_the_loss_decodes_seams_and_bands_as_numpy_does(separate: bool, ignore_edges: bool) -> None:
    torch = pytest.importorskip(
        "torch", reason="torch not installed (the train extra)", exc_type=ImportError
    )
    from models.masked_loss import MaskedLossConfig, masked_loss

    sample = _sample([[10, 10, 29, 29], [33, 12, 52, 31], [60, 60, 80, 75]], [4, 4, 2])
    coded = target_with_ignore(sample, np.array([[0, 80, 20, 95]]), STRIDE, 1, 12)
    plain = decode_target(coded, ignore_edges, separate)
    torch.manual_seed(1)
    logits = torch.randn(1, 7, *coded.shape)
    cfg = MaskedLossConfig(ignore_box_edges=ignore_edges, separate_neighbours=separate)
    as_coded = masked_loss(logits, torch.from_numpy(coded)[None], cfg)
    as_plain = masked_loss(logits, torch.from_numpy(plain)[None], cfg)
    assert torch.isclose(as_coded, as_plain)
    other = MaskedLossConfig(ignore_box_edges=ignore_edges, separate_neighbours=not separate)
    assert not torch.isclose(masked_loss(logits, torch.from_numpy(coded)[None], other), as_plain)


def test_neighbour_sampling_windows_hold_both_neighbours(tmp_path: Path) -> None:
    root = tmp_path / "PCBData"
    (root / "group1" / "1").mkdir(parents=True)
    (root / "group1" / "1_not").mkdir(parents=True)
    lines = []
    for ident, boxes in (
        ("1000", [(20, 30, 39, 49, 4), (120, 130, 139, 149, 1)]),  # far apart: no neighbours
        ("1001", [(100, 100, 119, 119, 4), (124, 100, 143, 119, 4)]),  # 4 px apart, both spur
    ):
        template = np.zeros((192, 192), np.uint8)
        test = template.copy()
        for x0, y0, x1, y1, _ in boxes:
            test[y0 + 5 : y1 - 4, x0 + 5 : x1 - 4] = 255
        cv2.imwrite(str(root / "group1" / "1" / f"{ident}_temp.jpg"), template)
        cv2.imwrite(str(root / "group1" / "1" / f"{ident}_test.jpg"), test)
        text = "".join(f"{x0} {y0} {x1} {y1} {c}\n" for x0, y0, x1, y1, c in boxes)
        (root / "group1" / "1_not" / f"{ident}.txt").write_text(text)
        lines.append(SplitLine(f"group1/1/{ident}.jpg", f"group1/1_not/{ident}.txt"))
    config = DeepPcbConfig(
        crop_px=96, clean_fraction=0.0, jpeg_prob=0.0, neighbour_prob=1.0, neighbour_gap_px=12
    )
    pairs = DeepPcbPairs(root, lines, config, length=24, seed=3)
    assert pairs.with_neighbours == [1]
    for i in range(len(pairs)):
        sample, ignore = pairs[i]
        assert len(ignore) == 0
        assert list(sample.class_ids) == [4, 4], f"item {i}: {sample.class_ids}"
        assert len(list(close_pairs(sample.boxes_xyxy_px, sample.class_ids, 16.0))) == 1
    off = DeepPcbPairs(root, lines, DeepPcbConfig(crop_px=96), length=24, seed=3)
    assert off.with_neighbours == [1]  # found, but not drawn unless neighbour_prob > 0
