"""Registration recovers shift and rotation, and refuses boards it cannot align."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from aoi.errors import RegistrationError
from aoi.recipe import RegistrationSettings
from aoi.sources.synthetic.boardgen import golden_board
from aoi.types import Registration
from aoi.vision.registration import Registrar, align, seen_region


def _move(image: np.ndarray, dx: float, dy: float, angle_deg: float) -> np.ndarray:
    h, w = image.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle_deg, 1.0)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


#: Every test of a rule runs with both methods: the failure rules do not depend on the method.
METHODS = ("patches", "ecc")


@pytest.fixture(scope="module")
def board() -> np.ndarray:
    return golden_board(512, 640, 5, "binary")


@pytest.fixture(params=METHODS)
def method(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.parametrize(
    ("dx", "dy", "angle"),
    [(0.0, 0.0, 0.0), (3.0, -2.0, 0.0), (-2.5, 1.5, 0.8), (1.2, 2.9, -1.0), (-3.0, -3.0, 0.5)],
)
def test_recovers_shift_and_rotation(
    board: np.ndarray, method: str, dx: float, dy: float, angle: float
) -> None:
    rng = np.random.default_rng(1)
    moved = _move(board, dx, dy, angle)
    moved = np.clip(moved + rng.normal(0, 4, moved.shape), 0, 255).astype(np.uint8)
    _aligned, reg = align(Registrar(board, RegistrationSettings(method=method)), moved)
    assert reg.shift_x_px == pytest.approx(dx, abs=0.1)
    assert reg.shift_y_px == pytest.approx(dy, abs=0.1)
    assert reg.rotation_deg == pytest.approx(angle, abs=0.05)
    assert reg.correlation > 0.9
    # Aligned back: the residual is what noise and interpolation leave, far below a misfit's.
    misfit = float(np.abs(moved.astype(int) - board.astype(int)).mean())
    assert reg.residual < 6.0
    assert misfit == 0 or reg.residual < misfit


def test_grey_look_with_illumination(board: np.ndarray, method: str) -> None:
    grey = golden_board(480, 480, 9, "grey")
    aligned, reg = align(
        Registrar(grey, RegistrationSettings(method=method)), _move(grey, 2.0, -1.0, 0.6)
    )
    assert (reg.shift_x_px, reg.shift_y_px) == pytest.approx((2.0, -1.0), abs=0.15)
    assert aligned.shape == grey.shape


def test_unrelated_board_fails_instead_of_passing(board: np.ndarray, method: str) -> None:
    other = golden_board(512, 640, 999, "binary")
    with pytest.raises(RegistrationError, match="correlation must be >="):
        Registrar(board, RegistrationSettings(method=method)).register(other)


def test_blank_frame_fails(board: np.ndarray, method: str) -> None:
    blank = np.full_like(board, 128)
    with pytest.raises(RegistrationError):
        Registrar(board, RegistrationSettings(method=method)).register(blank)


def test_shift_beyond_recipe_limit_is_refused(board: np.ndarray, method: str) -> None:
    settings = RegistrationSettings(method=method, max_shift_px=2.0)
    with pytest.raises(RegistrationError, match=r"board shift must be <= 2.0 px, got \(3.0, 3.0\)"):
        Registrar(board, settings).register(_move(board, 3.0, 3.0, 0.0))


def test_rotation_beyond_recipe_limit_is_refused(board: np.ndarray, method: str) -> None:
    settings = RegistrationSettings(method=method, max_rotation_deg=0.5)
    with pytest.raises(RegistrationError, match=r"board rotation must be <= 0\.50 deg, got 1\.2"):
        Registrar(board, settings).register(_move(board, 0.0, 0.0, 1.2))


def test_wrong_size_frame_is_refused(board: np.ndarray, method: str) -> None:
    with pytest.raises(
        RegistrationError, match="frame must be 640x512 like the template, got 640x480"
    ):
        Registrar(board, RegistrationSettings(method=method)).register(board[:480])


def test_method_none_is_identity(board: np.ndarray) -> None:
    aligned, reg = align(Registrar(board, RegistrationSettings(method="none")), board)
    assert reg.shift_x_px == reg.shift_y_px == reg.rotation_deg == 0.0
    assert reg.residual == 0.0
    assert aligned is board


def test_registering_many_boards_leaves_the_template_untouched(board: np.ndarray) -> None:
    """Regression: OpenCV 5.0's phaseCorrelate windowed its inputs in place, and the cached
    template degraded board after board until registration failed for good."""
    registrar = Registrar(board, RegistrationSettings(method="ecc"))
    before = [level.template.copy() for level in registrar._levels]
    moved = _move(board, 2.0, -1.0, 0.8)
    first = registrar.register(moved)
    for _ in range(40):
        last = registrar.register(moved)
    for level, copy in zip(registrar._levels, before, strict=True):
        assert np.array_equal(level.template, copy)
    assert np.allclose(first.transform, last.transform)
    assert last.correlation > 0.9


@pytest.mark.parametrize(
    ("dx", "dy", "angle", "expected"),
    [
        (0.0, 0.0, 0.0, (0, 0, 640, 512)),
        (3.0, 0.0, 0.0, (4, 4, 633, 508)),  # board moved right: the left strip was not seen
        (-3.0, 2.0, 0.0, (7, 4, 636, 506)),  # moved left and down: right and top strips
    ],
)
def test_seen_region_excludes_what_the_camera_did_not_see(
    dx: float, dy: float, angle: float, expected: tuple[int, int, int, int]
) -> None:
    m = cv2.getRotationMatrix2D((319.5, 255.5), angle, 1.0)
    m[:, 2] += (dx, dy)
    reg = Registration(m.astype(np.float32), dx, dy, angle, 1.0, 0.0)
    assert seen_region(reg, 640, 512, 4) == expected


def test_seen_region_shrinks_with_rotation() -> None:
    m = cv2.getRotationMatrix2D((319.5, 255.5), 1.0, 1.0)
    reg = Registration(m.astype(np.float32), 0.0, 0.0, 1.0, 1.0, 0.0)
    x0, y0, x1, y1 = seen_region(reg, 640, 512, 4)
    # sin(1 deg) * 256 ~ 4.5 px at the left/right edges, sin(1 deg) * 320 ~ 5.6 px top/bottom
    assert 8 <= x0 <= 10 and 630 <= x1 <= 632
    assert 9 <= y0 <= 11 and 501 <= y1 <= 503


@pytest.mark.parametrize(
    ("height", "width", "downscale"),
    [(3000, 4096, 16), (1500, 1000, 16), (1030, 770, 8)],  # sizes that 16 does not divide
)
def test_large_frames_register_through_a_pyramid_cut_from_its_finest_level(
    height: int, width: int, downscale: int
) -> None:
    board = golden_board(height, width, 9, "binary")
    settings = RegistrationSettings(method="ecc", downscale=downscale, max_shift_px=12.0)
    registrar = Registrar(board, settings)
    assert registrar._levels[-1].factor == registrar._finest > 1  # never the full frame
    moved = _move(board, 4.2, -3.1, 0.4)
    reg = registrar.register(moved)
    assert reg.shift_x_px == pytest.approx(4.2, abs=0.1)
    assert reg.shift_y_px == pytest.approx(-3.1, abs=0.1)
    assert reg.rotation_deg == pytest.approx(0.4, abs=0.05)


def _sparse_board() -> np.ndarray:
    """A 640x640 board whose copper is in two corners only, as many DeepPCB crops are: seven of
    the nine grid cells of the patch picker hold nothing to register on."""
    board = np.full((640, 640), 255, np.uint8)
    for ox, oy in ((40, 40), (440, 440)):
        for k, (px, py) in enumerate(((0, 0), (85, 5), (10, 90), (95, 95))):
            x, y = ox + px, oy + py
            cv2.rectangle(board, (x, y), (x + 30 + 3 * k, y + 12), 0, -1)
            cv2.rectangle(board, (x, y), (x + 10, y + 36 - 2 * k), 0, -1)
            cv2.circle(board, (x + 24, y + 26), 5 + k, 0, -1)
    return board


def test_a_sparse_board_registers_on_patches_from_where_its_copper_is() -> None:
    board = _sparse_board()
    moved = _move(board, 1.7, -2.2, 0.4)
    moved = np.clip(moved + np.random.default_rng(3).normal(0, 3, moved.shape), 0, 255)
    _aligned, reg = align(
        Registrar(board, RegistrationSettings(method="patches")), moved.astype(np.uint8)
    )
    assert (reg.shift_x_px, reg.shift_y_px) == pytest.approx((1.7, -2.2), abs=0.1)
    assert reg.rotation_deg == pytest.approx(0.4, abs=0.05)
    assert reg.correlation > 0.9


def test_a_board_onto_itself_correlates_fully_with_patches_on_copper_and_laminate() -> None:
    # The left half is a copper pour with clearances, the right half laminate with pads: the
    # patches' means differ, which the accept/refuse correlation must not count as misfit.
    board = golden_board(640, 640, 5, "binary")
    board[:, :320] = 255 - board[:, :320] // 4
    _aligned, reg = align(Registrar(board, RegistrationSettings(method="patches")), board)
    assert (reg.shift_x_px, reg.shift_y_px, reg.rotation_deg) == pytest.approx((0, 0, 0), abs=0.02)
    assert reg.correlation > 0.99


def test_the_recipe_edge_margin_sets_how_far_from_the_unseen_edge_inspection_starts() -> None:
    board = golden_board(512, 640, 5, "binary")
    m = cv2.getRotationMatrix2D((319.5, 255.5), 0.0, 1.0)
    m[:, 2] += (-3.0, 2.0)
    reg = Registration(m.astype(np.float32), -3.0, 2.0, 0.0, 1.0, 0.0)
    wide = Registrar(board, RegistrationSettings(edge_margin_px=12))
    assert wide.seen(reg, 640, 512) == seen_region(reg, 640, 512, 12) == (15, 12, 628, 498)
    unset = Registrar(board, RegistrationSettings())  # a recipe written before the field: 4 px
    assert unset.settings.edge_margin_px is None
    assert unset.seen(reg, 640, 512) == (7, 4, 636, 506)
    assert unset.seen(None, 640, 512) is None
