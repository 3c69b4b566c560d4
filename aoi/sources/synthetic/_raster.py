"""What the synthetic board modules share: copper-mask checks and the eight routing directions."""

from __future__ import annotations

import numpy as np

MIN_SIZE_PX = 16
#: Unit steps of the eight routing directions, 45 degrees apart (index k, k+1 turns 45 degrees).
DIRS = np.array(
    [(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)], dtype=np.float64
)
DIRS /= np.linalg.norm(DIRS, axis=1, keepdims=True)


def check_size(height_px: int, width_px: int) -> None:
    if height_px < MIN_SIZE_PX or width_px < MIN_SIZE_PX:
        msg = (
            f"board size must be at least {MIN_SIZE_PX}x{MIN_SIZE_PX} px, "
            f"got {width_px}x{height_px}"
        )
        raise ValueError(msg)


def check_mask(copper: np.ndarray) -> None:
    if not isinstance(copper, np.ndarray) or copper.dtype != np.bool_ or copper.ndim != 2:
        found = f"{copper.dtype} {copper.shape}" if isinstance(copper, np.ndarray) else type(copper)
        msg = f"copper must be a 2-D bool numpy array, got {found}"
        raise ValueError(msg)
    check_size(*copper.shape)
