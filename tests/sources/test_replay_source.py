"""ReplaySource on generated folders (plain and DeepPCB layout) and on real DeepPCB pairs."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from aoi.errors import SourceError, SourceExhausted
from aoi.sources.base import ImageSource
from aoi.sources.replay import ReplaySource
from aoi.types import Frame


def _write(path: Path, img: np.ndarray) -> None:
    assert cv2.imwrite(str(path), img), path


@pytest.fixture
def plain_folder(tmp_path: Path) -> Path:
    """Five files in name order: grey, colour, 16-bit grey, BGRA, and a corrupt one."""
    folder = tmp_path / "plain"
    folder.mkdir()
    grey = np.tile(np.arange(64, dtype=np.uint8), (48, 1))
    _write(folder / "a_grey.png", grey)
    colour = np.zeros((48, 64, 3), np.uint8)
    colour[:, :, 2] = 200  # red in BGR
    _write(folder / "b_colour.png", colour)
    _write(folder / "c_deep.png", (grey.astype(np.uint16) * 1000))
    bgra = np.dstack([colour, np.full((48, 64), 128, np.uint8)])
    _write(folder / "d_alpha.png", bgra)
    (folder / "e_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def _deeppcb_group(root: Path, group: str, pairs: dict[str, str | None]) -> Path:
    """A DeepPCB group folder; ``pairs`` maps a pair id to its annotation text (None: no file)."""
    images = root / f"group{group}" / group
    notes = root / f"group{group}" / f"{group}_not"
    images.mkdir(parents=True)
    notes.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for pair_id, annotation in pairs.items():
        template = np.where(rng.random((64, 64)) > 0.5, 255, 0).astype(np.uint8)
        test = template.copy()
        test[10:20, 10:20] = 255 - test[10:20, 10:20]
        _write(images / f"{pair_id}_test.jpg", test)
        _write(images / f"{pair_id}_temp.jpg", template)
        if annotation is not None:
            (notes / f"{pair_id}.txt").write_text(annotation)
    return images


def test_plain_folder_in_order_with_types(plain_folder: Path) -> None:
    with ReplaySource(plain_folder) as source:
        assert isinstance(source, ImageSource)
        assert source.describe() == f"Replaying stored images ({plain_folder})"
        assert len(source) == 5
        assert not source.is_deeppcb
        frames = [source.grab() for _ in range(4)]
        with pytest.raises(SourceError, match=r"e_corrupt\.png: cannot decode image"):
            source.grab()
        with pytest.raises(SourceExhausted, match=r"all 5 frames delivered"):
            source.grab()
    assert [f.name for f in frames] == ["a_grey", "b_colour", "c_deep", "d_alpha"]
    assert [f.frame_id for f in frames] == [0, 1, 2, 3]
    assert all(isinstance(f, Frame) and f.source == "replay" for f in frames)
    assert all(a.available_ns < b.available_ns for a, b in itertools.pairwise(frames))
    grey, colour, deep, alpha = (f.image for f in frames)
    assert grey.shape == (48, 64)
    assert grey.dtype == np.uint8
    assert colour.shape == (48, 64, 3)
    assert colour[0, 0].tolist() == [0, 0, 200]
    assert deep.dtype == np.uint16
    assert int(deep.max()) == 63_000
    assert alpha.shape == (48, 64, 3)
    assert alpha[0, 0].tolist() == [0, 0, 200]
    assert all(f.template is None and f.truth is None for f in frames)


def test_a_bad_file_is_skipped_by_the_next_grab(tmp_path: Path) -> None:
    _write(tmp_path / "1.png", np.zeros((32, 32), np.uint8))
    (tmp_path / "2.png").write_bytes(b"garbage")
    _write(tmp_path / "3.png", np.full((32, 32), 9, np.uint8))
    with ReplaySource(tmp_path) as source:
        assert source.grab().name == "1"
        with pytest.raises(SourceError, match=r"2\.png"):
            source.grab()
        after = source.grab()
    assert after.name == "3"
    assert after.frame_id == 1


def test_loop_starts_again_and_ids_keep_counting(tmp_path: Path) -> None:
    for i in range(2):
        _write(tmp_path / f"{i}.png", np.full((20, 20), i, np.uint8))
    with ReplaySource(tmp_path, loop=True) as source:
        frames = [source.grab() for _ in range(5)]
    assert [f.name for f in frames] == ["0", "1", "0", "1", "0"]
    assert [f.frame_id for f in frames] == [0, 1, 2, 3, 4]


def test_pattern_narrows_the_folder(plain_folder: Path) -> None:
    with ReplaySource(plain_folder, pattern="[bc]_*.png") as source:
        assert len(source) == 2
        assert source.grab().name == "b_colour"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", r"replay folder .*missing does not exist"),
        (lambda p: p, r"replay folder .* holds no images; expected \.bmp, \.jpeg"),
    ],
)
def test_missing_or_empty_folder_fails_on_enter(
    tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    source = ReplaySource(make(tmp_path))
    with pytest.raises(SourceError, match=message), source:
        pass


def test_too_small_image_names_the_file(tmp_path: Path) -> None:
    _write(tmp_path / "tiny.png", np.zeros((8, 8), np.uint8))
    with ReplaySource(tmp_path) as source, pytest.raises(SourceError, match=r"tiny\.png.*16x16"):
        source.grab()


def test_grab_outside_with_block_is_an_error(plain_folder: Path) -> None:
    with pytest.raises(SourceError, match=r"not open; use it in a 'with' block"):
        ReplaySource(plain_folder).grab()


def test_deeppcb_layout_pairs_template_and_truth(tmp_path: Path) -> None:
    _deeppcb_group(
        tmp_path,
        "12000",
        {
            "12000000": "10 10 20 20 1\n30 5 40 15 6\n",
            "12000001": None,  # no annotation: truth None, not an error
            "12000002": "",  # empty annotation: a defect-free board
        },
    )
    _deeppcb_group(tmp_path, "34000", {"34000007": "1,2,3,4,2\n"})
    with ReplaySource(tmp_path) as source:
        assert source.is_deeppcb
        assert len(source) == 4
        frames = [source.grab() for _ in range(4)]
        with pytest.raises(SourceExhausted):
            source.grab()
    assert [f.name for f in frames] == [
        "12000000_test",
        "12000001_test",
        "12000002_test",
        "34000007_test",
    ]
    first = frames[0]
    assert first.template is not None
    assert first.template.shape == first.image.shape == (64, 64)
    assert not np.array_equal(first.template, first.image)
    assert first.truth is not None
    assert first.truth.bbox_xyxy_px.tolist() == [[10, 10, 20, 20], [30, 5, 40, 15]]
    assert first.truth.class_ids.tolist() == [1, 6]
    assert frames[1].truth is None
    assert frames[2].truth is not None
    assert not frames[2].truth.is_defective
    assert frames[3].truth is not None
    assert frames[3].truth.class_ids.tolist() == [2]


def test_deeppcb_single_group_folder(tmp_path: Path) -> None:
    images = _deeppcb_group(tmp_path, "55000", {"55000001": "1 1 5 5 3\n"})
    with ReplaySource(images) as source:
        frame = source.grab()
    assert frame.truth is not None
    assert frame.truth.class_ids.tolist() == [3]


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ("10 10 20", "'10 10 20'"),
        ("10 10 20 20 7", "'10 10 20 20 7'"),
        ("20 10 10 20 1", "'20 10 10 20 1'"),
        ("a b c d e", "'a b c d e'"),
    ],
)
def test_malformed_annotation_names_file_and_line(tmp_path: Path, line: str, found: str) -> None:
    _deeppcb_group(tmp_path, "77000", {"77000003": f"1 1 5 5 1\n{line}\n"})
    with ReplaySource(tmp_path) as source, pytest.raises(SourceError) as info:
        source.grab()
    message = str(info.value)
    assert "77000_not/77000003.txt:2:" in message
    assert "expected 'x1 y1 x2 y2 type'" in message
    assert f"found {found}" in message


def test_real_deeppcb_pairs(deeppcb_dir: Path) -> None:
    group = deeppcb_dir / "PCBData" / "group00041" / "00041"
    with ReplaySource(group, pattern="0004100[0-2]_test.jpg") as source:
        assert source.is_deeppcb
        assert len(source) == 3
        frames = [source.grab() for _ in range(3)]
    for frame in frames:
        assert frame.image.shape == (640, 640)
        assert frame.image.dtype == np.uint8
        assert frame.template is not None
        assert frame.template.shape == (640, 640)
        assert frame.truth is not None
        assert 1 <= len(frame.truth.class_ids) <= 20
    assert frames[0].name == "00041000_test"
    assert frames[0].truth is not None
    assert frames[0].truth.bbox_xyxy_px[0].tolist() == [466, 441, 493, 470]
    assert frames[0].truth.class_ids[0] == 3
