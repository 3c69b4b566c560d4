"""DeepPCB training data: group split, packing, augmentation that keeps boxes on the defects."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from pcbdata_helpers import pcb_line, write_pcbdata

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # models/ is a folder of scripts, not an installed package

from models.dataset import PairSample  # noqa: E402
from models.deeppcb import (  # noqa: E402
    VAL_GROUPS,
    DeepPcbConfig,
    DeepPcbPairs,
    MixedPairs,
    crop,
    dihedral,
    load_pair,
    pack,
    read_list,
    rescaled,
    split_by_group,
)
from models.targets import EDGE_BAND, IGNORE, decode_target, target_with_ignore  # noqa: E402

SPLITS = REPO / "models" / "splits"
#: A clean config: geometry only, so that the test - template difference is the defect alone.
GEOMETRY_ONLY = DeepPcbConfig(
    crop_px=160,
    clean_fraction=0.0,
    defect_centred_prob=0.5,
    jpeg_prob=0.0,
    brightness_prob=0.0,
    noise_prob=0.0,
    misalign_prob=1.0,
    misalign_px=3.5,
    pose_prob=0.5,
)


def test_split_is_group_disjoint_and_complete() -> None:
    lines = [
        pcb_line(g, f"{g[5:]}{i:03d}") for g in ("group1", "group2", "group3") for i in range(4)
    ]
    train, val = split_by_group(lines, ("group2",))
    assert {ln.group for ln in val} == {"group2"}
    assert "group2" not in {ln.group for ln in train}
    assert sorted(ln.text() for ln in train + val) == sorted(ln.text() for ln in lines)
    with pytest.raises(ValueError, match=r"validation groups \['group9'\] are not in the list"):
        split_by_group(lines, ("group9",))


def test_shipped_split_files_are_group_disjoint() -> None:
    train = read_list(SPLITS / "deeppcb-train.txt")
    val = read_list(SPLITS / "deeppcb-val.txt")
    assert {ln.group for ln in val} == set(VAL_GROUPS)
    assert not {ln.group for ln in train} & set(VAL_GROUPS)
    assert len(train) + len(val) == 1000
    assert not {ln.image for ln in train} & {ln.image for ln in val}


def test_read_list_names_the_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "list.txt"
    bad.write_text("group1/1/1000.jpg group1/1_not/1000.txt\nnot-a-pair\n")
    with pytest.raises(ValueError, match=r"list\.txt:2: expected"):
        read_list(bad)


def test_pack_writes_bilevel_training_pairs_and_keeps_val_as_is(tmp_path: Path) -> None:
    lines = write_pcbdata(tmp_path / "PCBData", {"group1": 2, "group2": 1})
    train, val = split_by_group(lines, ("group2",))
    out = tmp_path / "pack"
    assert pack(tmp_path / "PCBData", train, val, out) > 0
    assert (out / "group1" / "1" / "1000_test.png").is_file()
    assert not (out / "group1" / "1" / "1000_test.jpg").exists()
    assert (out / "group2" / "2" / "2000_test.jpg").is_file()
    packed = load_pair(out, train[0])
    assert set(np.unique(packed.test)) <= {0, 255}
    original = load_pair(tmp_path / "PCBData", train[0])
    np.testing.assert_array_equal(packed.boxes_xyxy_px, original.boxes_xyxy_px)
    assert read_list(out / "trainval.txt") == train + val


def _defect_pixels_inside(sample: PairSample, tolerance_px: int = 1) -> tuple[int, int]:
    """(defect pixels outside every box grown by the tolerance, defect pixels in all)."""
    diff = cv2.absdiff(sample.test, sample.template) > 100
    inside = np.zeros_like(diff)
    for x0, y0, x1, y1 in sample.boxes_xyxy_px:
        r0, c0 = max(int(np.floor(y0)) - tolerance_px, 0), max(int(np.floor(x0)) - tolerance_px, 0)
        inside[
            r0 : int(np.ceil(y1)) + tolerance_px + 1, c0 : int(np.ceil(x1)) + tolerance_px + 1
        ] = True
    return int((diff & ~inside).sum()), int(diff.sum())


@pytest.mark.parametrize(("pose_prob", "scale_prob"), [(0.0, 0.0), (1.0, 0.0), (0.5, 1.0)])
def test_augmentation_keeps_boxes_on_the_defects(
    tmp_path: Path, pose_prob: float, scale_prob: float
) -> None:
    lines = write_pcbdata(tmp_path / "PCBData", {"group1": 4})
    config = replace(GEOMETRY_ONLY, pose_prob=pose_prob, scale_prob=scale_prob, scale=(0.75, 1.33))
    pairs = DeepPcbPairs(tmp_path / "PCBData", lines, config, length=64, seed=5)
    seen = 0
    for i in range(len(pairs)):
        sample, ignore = pairs[i]
        assert sample.test.shape == (160, 160)
        outside, total = _defect_pixels_inside(sample)
        if len(ignore) == 0:
            assert outside == 0, f"item {i}: {outside} defect pixels outside the boxes"
        seen += int(total > 0 and len(sample.class_ids) > 0)
        for x0, y0, x1, y1 in sample.boxes_xyxy_px:
            assert 0 <= x0 <= x1 <= 159 and 0 <= y0 <= y1 <= 159
            assert (
                cv2.absdiff(sample.test, sample.template)[
                    int(y0) : int(y1) + 1, int(x0) : int(x1) + 1
                ].max()
                > 100
            )
    assert seen > 32  # most crops hold their defect


def test_dihedral_moves_inclusive_boxes_exactly() -> None:
    test = np.zeros((64, 48), np.uint8)
    test[10:15, 20:31] = 255
    sample = PairSample(
        test, np.zeros_like(test), np.array([[20, 10, 30, 14]], np.float32), np.array([1])
    )
    for seed in range(16):
        out = dihedral(sample, np.random.default_rng(seed))
        ys, xs = np.nonzero(out.test)
        assert tuple(out.boxes_xyxy_px[0].astype(int)) == (xs.min(), ys.min(), xs.max(), ys.max())


def test_rescaling_scales_boxes_with_the_board_and_draws_nothing_when_off() -> None:
    """A 40x20 px block at (100, 60) in a 320 px pair: at any drawn factor its box is the
    resized block's own (to a pixel), and a config without rescaling leaves the generator
    where it was (v4's batches do not change)."""
    test = np.zeros((320, 320), np.uint8)
    test[60:80, 100:140] = 255
    box = np.array([[100, 60, 139, 79]], np.float32)
    sample = PairSample(test, np.zeros_like(test), box, np.array([3]))
    on = DeepPcbConfig(crop_px=160, scale_prob=1.0, scale=(0.6, 1.6))
    sizes = set()
    for seed in range(12):
        out = rescaled(sample, np.random.default_rng(seed), on)
        sizes.add(out.test.shape)
        assert out.template.shape == out.test.shape and min(out.test.shape) >= 160
        ys, xs = np.nonzero(out.test > 127)
        got = out.boxes_xyxy_px[0]
        assert np.abs(got - (xs.min(), ys.min(), xs.max(), ys.max())).max() <= 1.0
        assert out.class_ids.tolist() == [3]
    assert len(sizes) > 6  # the factor is drawn, not fixed
    rng = np.random.default_rng(4)
    assert rescaled(sample, rng, DeepPcbConfig()) is sample
    assert rng.random() == np.random.default_rng(4).random()
    with pytest.raises(ValueError, match="scale must be"):
        DeepPcbConfig.from_mapping({"scale": [1.5, 1.2]})


def test_crop_moves_mostly_cut_boxes_to_ignore() -> None:
    image = np.zeros((64, 64), np.uint8)
    boxes = np.array([[4, 4, 13, 13], [28, 4, 37, 13], [40, 40, 49, 49]], np.float32)
    sample = PairSample(image, image, boxes, np.array([1, 2, 3]))
    out, ignore = crop(sample, 0, 0, 32, min_visible=0.5)
    np.testing.assert_array_equal(out.boxes_xyxy_px, [[4, 4, 13, 13]])
    np.testing.assert_array_equal(out.class_ids, [1])
    np.testing.assert_array_equal(ignore, [[28, 4, 31, 13]])  # 4 of 10 columns left


def test_target_fills_boxes_marks_edges_and_ignores() -> None:
    image = np.zeros((64, 64), np.uint8)
    sample = PairSample(image, image, np.array([[8, 8, 27, 27]], np.float32), np.array([4]))
    target = target_with_ignore(sample, np.array([[40, 40, 45, 45]], np.float32), 2, 1)
    assert target.shape == (32, 32)
    assert target[8, 8] == 4  # inside, away from the edge
    assert target[4, 4] == 4 + EDGE_BAND  # on the box's edge
    assert target[3, 8] == EDGE_BAND  # just outside: background in the band
    assert target[1, 1] == 0
    assert target[21, 21] == IGNORE
    np.testing.assert_array_equal(np.unique(decode_target(target, True)), [0, 4, IGNORE])
    assert decode_target(target, False)[4, 4] == 4
    assert decode_target(target, False)[3, 8] == 0


class _Stub(Sequence[PairSample]):
    def __init__(self, value: int, n: int) -> None:
        self.value, self.n = value, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> PairSample:  # type: ignore[override]
        img = np.full((16, 16), self.value, np.uint8)
        return PairSample(img, img, np.zeros((0, 4), np.float32), np.zeros(0, np.int64))


def test_mixed_batches_start_with_their_synthetic_items() -> None:
    class _Deep(_Stub):
        def __getitem__(self, i: int):  # type: ignore[override]
            return super().__getitem__(i), np.zeros((0, 4), np.float32)

    mixed = MixedPairs(_Deep(200, 30), _Stub(100, 20), batch=8, synthetic_per_batch=2)  # type: ignore[arg-type]
    assert len(mixed) == 40
    firsts = [int(mixed[i][0].test[0, 0]) for i in range(8)]
    assert firsts == [100, 100] + [200] * 6


def test_training_configs_load_and_may_train_side_by_side(tmp_path: Path) -> None:
    pytest.importorskip(
        "torch", reason="torch not installed (the train extra)", exc_type=ImportError
    )
    from models.train_deeppcb import load_config

    main = load_config(REPO / "models" / "configs" / "deeppcb-v2.toml")
    small = load_config(REPO / "models" / "configs" / "deeppcb-v2-small.toml")
    assert main.shared() == small.shared()
    assert main.model != small.model
    assert Path(main.data.train_list) == Path("models/splits/deeppcb-train.txt")
    bad = tmp_path / "bad.toml"
    bad.write_text("[deeppcb]\ncrop_px = 320\nflip = true\n")
    with pytest.raises(ValueError, match=r"\[deeppcb\] has unknown keys \['flip'\]"):
        load_config(bad)


def test_the_loss_skips_ignored_and_optionally_edge_cells() -> None:
    torch = pytest.importorskip(
        "torch", reason="torch not installed (the train extra)", exc_type=ImportError
    )
    from models.masked_loss import MaskedLossConfig, masked_loss

    torch.manual_seed(0)
    logits = torch.randn(1, 7, 8, 8)
    target = torch.zeros(1, 8, 8, dtype=torch.int64)
    target[0, 2:5, 2:5] = 3
    skip = MaskedLossConfig(ignore_box_edges=True)
    base = masked_loss(logits, target, skip)
    ignored = target.clone()
    ignored[0, 0, :] = IGNORE
    changed = logits.clone()
    changed[0, :, 0, :] = torch.randn(7, 8) * 10  # what the model says there must not matter
    assert torch.isclose(masked_loss(logits, ignored, skip), masked_loss(changed, ignored, skip))
    banded = target.clone()
    banded[0, 1, 2:5] += EDGE_BAND
    keep = MaskedLossConfig(ignore_box_edges=False)
    assert torch.isclose(masked_loss(logits, banded, keep), base)
    assert not torch.isclose(masked_loss(logits, banded, skip), base)
