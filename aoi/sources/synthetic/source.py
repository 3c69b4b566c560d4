"""The ``synthetic`` image source: boards under test of a golden template, with known defects."""

from __future__ import annotations

import logging
import time
from types import TracebackType

import numpy as np

from aoi.errors import SourceError
from aoi.recipe import SyntheticSettings
from aoi.sources.synthetic import boardgen
from aoi.types import Frame, GroundTruth

log = logging.getLogger(__name__)


class SyntheticSource:
    """Stands in for a camera: each grab renders a fresh board under test of ``template``.

    Board ``i`` is defective with probability ``settings.defect_rate`` and then carries between
    ``defects_min`` and ``defects_max`` defects; its truth is in template coordinates. The stream
    is deterministic: the same template, settings and seed give the same frames and truths.
    """

    name = "synthetic"
    #: Nothing a synthetic board or a stored image can fail to apply.
    warnings: tuple[str, ...] = ()

    def __init__(
        self,
        template: np.ndarray,
        settings: SyntheticSettings,
        *,
        seed: int | None = None,
        board: str = "",
    ) -> None:
        """``board`` names what the template shows (the recipe's name), for :meth:`describe`."""
        if not isinstance(template, np.ndarray) or template.dtype != np.uint8 or template.ndim != 2:
            found = (
                f"{template.dtype} {template.shape}"
                if isinstance(template, np.ndarray)
                else type(template).__name__
            )
            msg = f"synthetic template must be a 2-D uint8 image, got {found}"
            raise ValueError(msg)
        if min(template.shape) < boardgen.MIN_SIZE_PX:
            msg = (
                f"synthetic template must be at least {boardgen.MIN_SIZE_PX}x"
                f"{boardgen.MIN_SIZE_PX} px, got {template.shape[1]}x{template.shape[0]}"
            )
            raise ValueError(msg)
        self._template = template
        self._settings = settings
        self._seed = settings.seed if seed is None else seed
        self.board = board
        # The copper of the template is recovered once; board_under_test would redo it per board.
        self._copper = boardgen.copper_from_image(template)
        self._next_id = 0
        self._open = False

    def __enter__(self) -> SyntheticSource:
        self._open = True
        log.info(
            "synthetic source open: %dx%d template, look %s, seed %d",
            self._template.shape[1],
            self._template.shape[0],
            self._settings.look,
            self._seed,
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open = False

    def describe(self) -> str:
        """What the camera light says: the boards this source simulates."""
        if self.board:
            return f"Simulated camera: synthetic {self.board} boards"
        h, w = self._template.shape
        return f"Simulated camera: synthetic boards of a {w}x{h} px template"

    def grab(self, timeout_s: float = 1.0) -> Frame:  # noqa: ARG002 - generation never waits
        """Generate the next board under test; its frame becomes available when it is rendered."""
        if not self._open:
            msg = "synthetic source is not open: use it as a context manager (with source: ...)"
            raise SourceError(msg)
        s = self._settings
        # One child generator per board keeps board i independent of how earlier boards went.
        rng = np.random.default_rng([self._seed, self._next_id])
        defective = rng.random() < s.defect_rate
        count = int(rng.integers(s.defects_min, s.defects_max + 1)) if defective else 0
        copper, truth = self._copper, GroundTruth.empty()
        if count:
            copper, truth = boardgen.inject_defects(copper, rng, count)
        image = boardgen.render(copper, s.look, rng, s.noise_sigma)
        image, _ = boardgen.misalign(image, rng, s.max_shift_px, s.max_rotation_deg)
        available_ns = time.perf_counter_ns()
        frame_id = self._next_id
        self._next_id += 1
        return Frame(
            image=image,
            frame_id=frame_id,
            available_ns=available_ns,
            source=self.name,
            name=f"synthetic-{frame_id:06d}",
            truth=truth,
        )
