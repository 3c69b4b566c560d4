"""Training pairs for the defect network: the sample type, synthetic boards and per-pixel targets.

A dataset is any sequence of :class:`PairSample` (registered test image, golden template, truth
boxes, class ids). :class:`SyntheticPairs` draws them from
:mod:`aoi.sources.synthetic.boardgen`; a DeepPCB dataset only has to yield the same sample
type. Nothing here imports torch, so the station's tools can reuse the target and sample code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from aoi.sources.synthetic import boardgen


@dataclass(frozen=True)
class PairSample:
    """One training pair: registered test, golden template (uint8 HxW) and its truth boxes."""

    test: np.ndarray
    template: np.ndarray
    boxes_xyxy_px: np.ndarray
    class_ids: np.ndarray

    def __post_init__(self) -> None:
        if self.test.dtype != np.uint8 or self.test.ndim != 2:
            msg = f"PairSample.test must be uint8 HxW, got {self.test.dtype} {self.test.shape}"
            raise ValueError(msg)
        if self.template.shape != self.test.shape or self.template.dtype != np.uint8:
            msg = (
                f"PairSample.template must be uint8 {self.test.shape}, "
                f"got {self.template.dtype} {self.template.shape}"
            )
            raise ValueError(msg)
        if self.boxes_xyxy_px.shape != (self.class_ids.shape[0], 4):
            msg = (
                f"PairSample.boxes_xyxy_px must have shape ({self.class_ids.shape[0]}, 4), "
                f"got {self.boxes_xyxy_px.shape}"
            )
            raise ValueError(msg)


@dataclass(frozen=True)
class SyntheticConfig:
    """How synthetic training pairs are drawn (the TOML config's ``[data]`` table)."""

    crop_sizes: tuple[int, ...] = (192, 224, 256, 288, 320)
    looks: tuple[str, ...] = ("binary", "grey")
    look_weights: tuple[float, ...] = (0.6, 0.4)
    noise_sigma: tuple[float, float] = (2.0, 8.0)
    defect_counts: tuple[int, ...] = (0, 1, 2, 3, 4)
    defect_count_weights: tuple[float, ...] = (0.3, 0.25, 0.2, 0.15, 0.1)
    max_residual_shift_px: float = 0.6
    max_residual_rotation_deg: float = 0.05
    recovered_copper_fraction: float = 0.5
    layout_sizes: tuple[int, ...] = (640, 1024)
    crops_per_layout: int = 8

    @classmethod
    def from_mapping(cls, values: dict[str, object]) -> SyntheticConfig:
        """Build a config from a TOML table, rejecting unknown keys by name."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            msg = f"[data] has unknown keys {unknown}; expected some of {sorted(known)}"
            raise ValueError(msg)
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        cfg = cls(**kwargs)  # type: ignore[arg-type]
        if len(cfg.looks) != len(cfg.look_weights):
            msg = "[data] looks and look_weights must have the same length"
            raise ValueError(msg)
        if len(cfg.defect_counts) != len(cfg.defect_count_weights):
            msg = "[data] defect_counts and defect_count_weights must have the same length"
            raise ValueError(msg)
        if any(size % 16 for size in cfg.crop_sizes):
            msg = f"[data] crop_sizes must be multiples of 16, got {cfg.crop_sizes}"
            raise ValueError(msg)
        return cfg


def residual_misalignment(
    image: np.ndarray, rng: np.random.Generator, max_shift_px: float, max_rotation_deg: float
) -> np.ndarray:
    """Warp ``image`` by the small shift and rotation that registration leaves behind."""
    h, w = image.shape
    angle = float(rng.uniform(-max_rotation_deg, max_rotation_deg))
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, 1.0)
    matrix[:, 2] += rng.uniform(-max_shift_px, max_shift_px, size=2)
    return cv2.warpAffine(
        image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )


@dataclass(frozen=True)
class _Board:
    """A whole synthetic golden board shared by consecutive crops: the costly part to draw."""

    layout: np.ndarray
    recovered: np.ndarray
    template: np.ndarray
    look: str
    noise_sigma: float


class SyntheticPairs(Sequence[PairSample]):
    """A reproducible sequence of synthetic pairs: item ``i`` depends only on ``(seed, i)``.

    ``crops_per_layout`` consecutive items share one golden board: a random layout of a size from
    ``layout_sizes``, rendered whole as the template (so illumination and the copper read-back
    behave as on a full board). Each item takes a window of it; its test copper is that window of
    the layout or, mostly, of the copper re-read from the template image (as
    ``boardgen.board_under_test`` does, so read-back differences are learnt as normal), with ``k``
    injected defects, rendered with fresh noise and lighting and shifted by a sub-pixel residual
    misalignment. ``k = 0`` items teach the network not to fire on clean boards.
    """

    def __init__(
        self, config: SyntheticConfig, length: int, seed: int = 0, size_group: int = 1
    ) -> None:
        self.config = config
        self.length = length
        self.seed = seed
        #: Consecutive items in groups of this many share one size, so a batch can be stacked.
        self.size_group = size_group
        self._board_key = -1
        self._board: _Board | None = None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> PairSample:  # type: ignore[override]
        if not 0 <= index < self.length:
            raise IndexError(index)
        cfg = self.config
        size_rng = np.random.default_rng([self.seed, index // self.size_group, 1])
        height, width = (int(v) for v in size_rng.choice(cfg.crop_sizes, size=2))
        board = self._shared_board(index)
        rng = np.random.default_rng([self.seed, index])
        full_h, full_w = board.layout.shape
        y = int(rng.integers(0, full_h - height + 1))
        x = int(rng.integers(0, full_w - width + 1))
        window = np.s_[y : y + height, x : x + width]
        template = np.ascontiguousarray(board.template[window])
        recovered = rng.random() < cfg.recovered_copper_fraction
        copper = np.ascontiguousarray((board.recovered if recovered else board.layout)[window])
        count = int(rng.choice(cfg.defect_counts, p=_normalised(cfg.defect_count_weights)))
        boxes = np.zeros((0, 4), np.float32)
        class_ids = np.zeros((0,), np.int64)
        if count:
            copper, truth = boardgen.inject_defects(copper, rng, count)
            boxes = np.asarray(truth.bbox_xyxy_px, np.float32).reshape(-1, 4)
            class_ids = np.asarray(truth.class_ids, np.int64)
        test = boardgen.render(copper, board.look, rng, noise_sigma=board.noise_sigma)  # type: ignore[arg-type]
        test = residual_misalignment(
            test, rng, cfg.max_residual_shift_px, cfg.max_residual_rotation_deg
        )
        return PairSample(test, template, boxes, class_ids)

    def _shared_board(self, index: int) -> _Board:
        """The golden board of ``index``'s group, drawn once by a worker that reads in order."""
        key = index // max(self.config.crops_per_layout, 1)
        if self._board is None or key != self._board_key:
            cfg = self.config
            rng = np.random.default_rng([self.seed, key, 4])
            side = max(int(rng.choice(cfg.layout_sizes)), *cfg.crop_sizes)
            look = str(rng.choice(cfg.looks, p=_normalised(cfg.look_weights)))
            sigma = float(rng.uniform(*cfg.noise_sigma))
            layout = boardgen.make_copper_layout(side, side, int(rng.integers(2**31)))
            template = boardgen.render(layout, look, rng, noise_sigma=sigma)  # type: ignore[arg-type]
            recovered = boardgen.copper_from_image(template)
            self._board = _Board(layout, recovered, template, look, sigma)
            self._board_key = key
        return self._board


def _normalised(weights: Sequence[float]) -> np.ndarray:
    arr = np.asarray(weights, np.float64)
    return arr / arr.sum()


def box_target(
    boxes_xyxy_px: np.ndarray, class_ids: np.ndarray, height: int, width: int, stride: int
) -> np.ndarray:
    """Per-pixel class map (int64, ``height/stride x width/stride``) with each truth box filled.

    Every output cell that the box touches gets the box's class; larger boxes are drawn first, so
    a small defect inside a large one stays visible. A box always covers at least one cell.
    """
    out_h, out_w = height // stride, width // stride
    target = np.zeros((out_h, out_w), np.int64)
    if len(class_ids) == 0:
        return target
    boxes = np.asarray(boxes_xyxy_px, np.float64).reshape(-1, 4)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in np.argsort(-areas, kind="stable"):
        x0, y0, x1, y1 = boxes[i]
        c0 = min(max(math.floor(x0 / stride), 0), out_w - 1)
        r0 = min(max(math.floor(y0 / stride), 0), out_h - 1)
        c1 = max(min(math.ceil(x1 / stride), out_w), c0 + 1)
        r1 = max(min(math.ceil(y1 / stride), out_h), r0 + 1)
        target[r0:r1, c0:c1] = int(class_ids[i])
    return target


def augment(
    sample: PairSample, rng: np.random.Generator, transpose: bool | None = None
) -> PairSample:
    """Apply one of the 8 flips/right-angle rotations to both images and the boxes.

    Defect classes do not depend on orientation, so this multiplies the data for free.
    ``transpose`` forces the diagonal flip on or off (a batch of non-square pairs must agree on
    it); ``None`` draws it from ``rng``.
    """
    test, template, boxes = sample.test, sample.template, sample.boxes_xyxy_px.astype(np.float32)
    h, w = test.shape
    if rng.random() < 0.5:  # horizontal flip
        test, template = test[:, ::-1], template[:, ::-1]
        boxes = np.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], axis=1)
    if rng.random() < 0.5:  # vertical flip
        test, template = test[::-1], template[::-1]
        boxes = np.stack([boxes[:, 0], h - boxes[:, 3], boxes[:, 2], h - boxes[:, 1]], axis=1)
    if rng.random() < 0.5 if transpose is None else transpose:  # with flips: any right angle
        test, template = test.T, template.T
        boxes = boxes[:, [1, 0, 3, 2]]
    return PairSample(
        np.ascontiguousarray(test),
        np.ascontiguousarray(template),
        boxes.reshape(-1, 4),
        sample.class_ids,
    )
