"""Image files cut short in replay are bad frames naming the file, never boards to judge.

Issue 12: a JPEG truncated to 80-95 % was decoded by OpenCV with its missing rows grey (libjpeg
only warns "Premature end of JPEG file") and judged NG with one "open" defect over 77 % of the
frame.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from aoi.errors import SourceError
from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.pipeline import Pipeline, run_cycles
from aoi.recipe import load_recipe
from aoi.sources.image_file import missing_part
from aoi.sources.replay import ReplaySource, read_image
from aoi.sources.synthetic.boardgen import golden_board
from aoi.types import ErrorKind, InspectionResult, Verdict

pytestmark = pytest.mark.fault

RecipeFactory = Callable[..., Path]

BOARD = golden_board(256, 256, 11, "binary")


def _encoded(ext: str, image: np.ndarray = BOARD, params: tuple[int, ...] = ()) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("share", [0.80, 0.85, 0.90, 0.95])
def test_a_truncated_jpeg_is_a_bad_frame_naming_the_file(tmp_path: Path, share: float) -> None:
    data = _encoded(".jpg")
    cut = tmp_path / "b_cut.jpg"
    cut.write_bytes(data[: int(len(data) * share)])
    partial = cv2.imread(str(cut), cv2.IMREAD_UNCHANGED)
    assert partial is not None, "OpenCV alone decodes the cut file: the fault is real"
    cv2.imwrite(str(tmp_path / "a_whole.jpg"), BOARD)
    cv2.imwrite(str(tmp_path / "c_whole.png"), BOARD)
    with ReplaySource(tmp_path) as source:
        assert source.grab().name == "a_whole"
        with pytest.raises(SourceError) as info:
            source.grab()
        assert source.grab().name == "c_whole", "the next file is still replayed"
    text = str(info.value)
    assert text.startswith(f"{cut}: cannot decode image: expected the whole file, found")
    assert "before its end marker FF D9" in text


@pytest.mark.parametrize(
    ("ext", "params", "found"),
    [
        (".jpg", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1), "end marker FF D9"),
        (".jpg", (cv2.IMWRITE_JPEG_RST_INTERVAL, 2), "end marker FF D9"),
        (".png", (), "the PNG ends at byte"),
        (".bmp", (), "BMP declares"),
    ],
)
def test_every_cut_of_a_file_is_found_and_the_whole_file_reads(
    tmp_path: Path, ext: str, params: tuple[int, ...], found: str
) -> None:
    data = _encoded(ext, BOARD, params)
    path = tmp_path / f"board{ext}"
    path.write_bytes(data + b"\x00" * 64)  # zero padding after the end is allowed
    assert np.array_equal(read_image(path), cv2.imdecode(np.frombuffer(data, np.uint8), -1))
    for share in np.linspace(0.05, 0.995, 40):
        cut = missing_part(data[: int(len(data) * share)])
        assert cut is not None and found in cut, (share, cut)
    path.write_bytes(data[: int(len(data) * 0.9)])
    with pytest.raises(
        SourceError, match=rf"{path.name}: cannot decode image: expected the whole file"
    ):
        read_image(path)


def test_a_thumbnails_end_marker_is_not_taken_for_the_images(tmp_path: Path) -> None:
    """An EXIF thumbnail is a JPEG inside an APP1 segment, with its own FF D9."""
    thumbnail = _encoded(".jpg", BOARD[::8, ::8].copy())
    app1 = b"Exif\x00\x00" + thumbnail
    data = _encoded(".jpg")
    with_thumbnail = data[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + data[2:]
    path = tmp_path / "exif.jpg"
    path.write_bytes(with_thumbnail)
    assert read_image(path).shape == BOARD.shape
    path.write_bytes(with_thumbnail[: int(len(with_thumbnail) * 0.9)])
    with pytest.raises(SourceError, match="before its end marker FF D9"):
        read_image(path)


def test_the_cycle_gives_error_bad_frame_for_a_truncated_jpeg(
    make_recipe: RecipeFactory, tmp_path: Path
) -> None:
    recipe = make_recipe(registration="none")
    loaded = load_recipe(recipe)
    folder = tmp_path / "frames"
    folder.mkdir()
    template = cv2.imread(str(loaded.template_path), cv2.IMREAD_GRAYSCALE)
    data = _encoded(".png", template)
    (folder / "1_whole.png").write_bytes(data)
    (folder / "2_cut.png").write_bytes(data[: int(len(data) * 0.85)])
    jpeg = _encoded(".jpg", template, (cv2.IMWRITE_JPEG_QUALITY, 100))
    (folder / "3_cut.jpg").write_bytes(jpeg[: int(len(jpeg) * 0.85)])
    results: list[InspectionResult] = []
    profile = loaded.recipe.geometry.profile
    with (
        OnnxRuntimeBackend(loaded.model_path, profile, threads=1) as backend,
        ReplaySource(folder) as source,
    ):
        run_cycles(Pipeline(loaded, backend), source, cycles=None, on_result=results.append)
    assert [r.verdict for r in results] == [Verdict.OK, Verdict.ERROR, Verdict.ERROR]
    assert [r.error_kind for r in results[1:]] == [ErrorKind.BAD_FRAME] * 2
    assert "2_cut.png" in results[1].error
    assert "3_cut.jpg" in results[2].error
    assert all(len(r.defects) == 0 for r in results)
