"""How DeepPCB training crops are augmented: the config, and the steps applied to a pair.

Right-angle rotations/flips of pair and boxes, JPEG re-compression, the station's registration
round trip (warp to a shifted/rotated pose and back, with a small residual), misalignment of the
test image off its template, brightness and noise, and the crop itself. Every step takes its
randomness from the caller's generator. Nothing here imports torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from models.dataset import PairSample, augment


@dataclass(frozen=True)
class DeepPcbConfig:
    """How DeepPCB training crops are drawn (the TOML config's ``[deeppcb]`` table)."""

    crop_px: int = 320
    #: Share of items whose test image is the template itself: clean boards, no boxes.
    clean_fraction: float = 0.1
    #: Share of crops placed to hold a randomly chosen defect box whole.
    defect_centred_prob: float = 0.5
    #: A clipped box that keeps less than this share of its area becomes "ignore" in the target.
    min_visible: float = 0.5
    jpeg_prob: float = 0.9
    jpeg_quality: tuple[int, int] = (65, 90)
    #: The station's registration round trip: warp the test to a pose up to this far away
    #: (border replicated, as a camera frame ends), then back with a small residual error.
    #: Share of pairs whose test image is moved off its template by up to ``misalign_px``
    #: (the rest by the registration residual only); boxes move with the test image.
    misalign_prob: float = 0.5
    misalign_px: float = 3.5
    pose_prob: float = 0.5
    pose_shift_px: float = 3.0
    pose_rotation_deg: float = 1.0
    residual_shift_px: float = 0.5
    residual_rotation_deg: float = 0.03
    brightness_prob: float = 0.3
    gain: tuple[float, float] = (0.8, 1.05)
    offset: tuple[float, float] = (-10.0, 25.0)
    noise_prob: float = 0.4
    noise_sigma: tuple[float, float] = (1.0, 6.0)
    #: Share of items drawn from the pairs that hold two same-class defects at most
    #: ``neighbour_gap_px`` apart, windowed on such a neighbour pair (they are rare: ~2 % of
    #: pairs, and the network must learn to keep them apart).
    neighbour_prob: float = 0.0
    neighbour_gap_px: float = 12.0
    #: Share of items whose pair (images and boxes) is resized by a factor drawn log-uniformly
    #: from ``scale``: DeepPCB's designs differ in feature size (median track width 12-50 px
    #: across the seven groups), and a model must read designs it never saw.
    scale_prob: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)

    @classmethod
    def from_mapping(cls, values: dict[str, object]) -> DeepPcbConfig:
        """Build a config from a TOML table, rejecting unknown keys by name."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            msg = f"[deeppcb] has unknown keys {unknown}; expected some of {sorted(known)}"
            raise ValueError(msg)
        cfg = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})  # type: ignore[arg-type]
        if cfg.crop_px % 16 or not 16 <= cfg.crop_px <= 640:
            msg = f"[deeppcb] crop_px must be a multiple of 16 in 16..640, got {cfg.crop_px}"
            raise ValueError(msg)
        lo, hi = cfg.scale
        if not 0.25 <= lo <= hi <= 4.0:
            msg = f"[deeppcb] scale must be [low, high], 0.25 <= low <= high <= 4; got {cfg.scale}"
            raise ValueError(msg)
        return cfg


def rescaled(sample: PairSample, rng: np.random.Generator, cfg: DeepPcbConfig) -> PairSample:
    """The pair resized by a factor from ``cfg.scale`` with ``cfg.scale_prob`` (never smaller
    than a crop); boxes scale with their exclusive edges. Draws nothing when the share is 0, so
    configs without it keep their batches."""
    if cfg.scale_prob <= 0 or rng.random() >= cfg.scale_prob:
        return sample
    lo, hi = cfg.scale
    s = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    h, w = sample.test.shape
    size = (max(cfg.crop_px, round(w * s)), max(cfg.crop_px, round(h * s)))
    sx, sy = size[0] / w, size[1] / h
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    b = sample.boxes_xyxy_px.astype(np.float32).reshape(-1, 4)
    boxes = np.stack(
        [b[:, 0] * sx, b[:, 1] * sy, (b[:, 2] + 1) * sx - 1, (b[:, 3] + 1) * sy - 1], axis=1
    )
    return PairSample(
        cv2.resize(sample.test, size, interpolation=interp),
        cv2.resize(sample.template, size, interpolation=interp),
        boxes.astype(np.float32),
        sample.class_ids,
    )


def dihedral(sample: PairSample, rng: np.random.Generator) -> PairSample:
    """``models.dataset.augment`` for boxes with inclusive corners (exact to the pixel)."""
    one = np.array([0, 0, 1, 1], np.float32)
    exclusive = PairSample(
        sample.test, sample.template, sample.boxes_xyxy_px + one, sample.class_ids
    )
    out = augment(exclusive, rng)
    return PairSample(out.test, out.template, out.boxes_xyxy_px - one, out.class_ids)


def _rigid(shape: tuple[int, int], dx: float, dy: float, angle_deg: float) -> np.ndarray:
    h, w = shape
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle_deg, 1.0)
    matrix[:, 2] += (dx, dy)
    return matrix


def misalignment(rng: np.random.Generator, cfg: DeepPcbConfig) -> tuple[float, float, float]:
    """How far the test image ends up off its template: ``(dx, dy, degrees)``.

    DeepPCB's own pairs are off by up to about 3.5 px (phase correlation: 20 % of them by more
    than 1 px, 11 % by more than 2 px); the rest get the sub-pixel residual of a registration.
    """
    if rng.random() < cfg.misalign_prob:
        radius = cfg.misalign_px * math.sqrt(rng.random())  # uniform over the disc
        direction = rng.uniform(0.0, 2.0 * math.pi)
        dx, dy = radius * math.cos(direction), radius * math.sin(direction)
    else:
        dx, dy = (float(v) for v in rng.uniform(-cfg.residual_shift_px, cfg.residual_shift_px, 2))
    angle = float(rng.uniform(-cfg.residual_rotation_deg, cfg.residual_rotation_deg))
    return dx, dy, angle


def pose_round_trip(
    image: np.ndarray,
    rng: np.random.Generator,
    cfg: DeepPcbConfig,
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """The board seen at another pose and registered back as the station does, ending
    ``offset`` = ``(dx, dy, degrees)`` away from where it started.

    The forward warp replicates the border (what lies outside a camera frame is unknown); the
    way back uses the station's resampling (bilinear, ``WARP_INVERSE_MAP``, replicated border)
    with an estimate that is off by the offset.
    """
    shape = image.shape
    dx, dy = rng.uniform(-cfg.pose_shift_px, cfg.pose_shift_px, size=2)
    angle = float(rng.uniform(-cfg.pose_rotation_deg, cfg.pose_rotation_deg))
    forward = _rigid(shape, float(dx), float(dy), angle)
    moved = cv2.warpAffine(
        image, forward, shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    # Inverse mapping with an estimate E = forward - offset moves the content by +offset.
    estimate = _rigid(shape, float(dx - offset[0]), float(dy - offset[1]), angle - offset[2])
    return cv2.warpAffine(
        moved,
        estimate,
        shape[::-1],
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def shifted(image: np.ndarray, offset: tuple[float, float, float]) -> np.ndarray:
    """``image`` with its content moved by ``offset`` = ``(dx, dy, degrees)``."""
    matrix = _rigid(image.shape, offset[0], offset[1], offset[2])
    return cv2.warpAffine(
        image, matrix, image.shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode as JPEG: the ringing of DeepPCB's own files (about quality 75)."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def photometric(image: np.ndarray, rng: np.random.Generator, cfg: DeepPcbConfig) -> np.ndarray:
    """Brightness (gain and offset) and Gaussian noise, each with its configured probability."""
    out = image.astype(np.float32)
    if rng.random() < cfg.brightness_prob:
        out = out * rng.uniform(*cfg.gain) + rng.uniform(*cfg.offset)
    if rng.random() < cfg.noise_prob:
        out = out + rng.normal(0.0, rng.uniform(*cfg.noise_sigma), size=out.shape)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def crop(
    sample: PairSample, y: int, x: int, size: int, min_visible: float
) -> tuple[PairSample, np.ndarray]:
    """A ``size`` square window at ``(y, x)``: (sample with clipped boxes, ignore boxes).

    Boxes keep inclusive corners. A box that keeps less than ``min_visible`` of its area is
    moved to the ignore boxes: its defect may lie outside the window.
    """
    window = np.s_[y : y + size, x : x + size]
    boxes = sample.boxes_xyxy_px.astype(np.float32) - np.array([x, y, x, y], np.float32)
    clipped = np.clip(boxes, 0, size - 1)
    inside = (boxes[:, 2] >= 0) & (boxes[:, 3] >= 0) & (boxes[:, 0] < size) & (boxes[:, 1] < size)
    area = np.prod(boxes[:, 2:] - boxes[:, :2] + 1, axis=1)
    kept = np.prod(clipped[:, 2:] - clipped[:, :2] + 1, axis=1)
    good = inside & (kept >= min_visible * area)
    out = PairSample(
        np.ascontiguousarray(sample.test[window]),
        np.ascontiguousarray(sample.template[window]),
        clipped[good].reshape(-1, 4),
        sample.class_ids[good],
    )
    return out, clipped[inside & ~good].reshape(-1, 4)
