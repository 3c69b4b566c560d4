"""Preprocessing: frame to mono 8-bit, and registered frame + template to network inputs.

A frame is cut into tiles (or taken whole), each tile padded to the model's size multiple, and
stacked with the same tile of the golden template as a uint8 ``[N, 2, H, W]`` batch: the network
normalises inside its graph, so only bytes cross to the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aoi.errors import FrameError
from aoi.recipe import MODEL_CHANNELS, Geometry, _tiles_along
from aoi.types import FrameBatch


@dataclass(frozen=True)
class Tile:
    """Where one network input sits in the frame, and which part of it the tile owns.

    Overlapping tiles see the same defect twice; each defect is kept only by the tile whose
    ``own`` box contains the defect's centre, so nothing is reported twice or lost at a seam.
    """

    x0: int
    y0: int
    width_px: int
    height_px: int
    own_xyxy: tuple[int, int, int, int]


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    n = _tiles_along(length, tile, overlap)
    if n == 1:
        return [0]
    # Spread the tiles evenly so the last one ends exactly at the frame's edge.
    step = (length - tile) / (n - 1)
    return [round(i * step) for i in range(n)]


def _owned(starts: list[int], tile: int, length: int) -> list[tuple[int, int]]:
    out = []
    for i, s in enumerate(starts):
        lo = 0 if i == 0 else (s + starts[i - 1] + tile) // 2
        hi = length if i == len(starts) - 1 else (starts[i + 1] + s + tile) // 2
        out.append((lo, hi))
    return out


def plan_tiles(geometry: Geometry) -> list[Tile]:
    """The tiles that cover the frame (one tile for ``mode = "full"``)."""
    fw, fh = geometry.frame_width_px, geometry.frame_height_px
    if geometry.mode == "full":
        return [Tile(0, 0, fw, fh, (0, 0, fw, fh))]
    assert geometry.tile_width_px is not None and geometry.tile_height_px is not None
    tw, th = min(geometry.tile_width_px, fw), min(geometry.tile_height_px, fh)
    xs, ys = _starts(fw, tw, geometry.tile_overlap_px), _starts(fh, th, geometry.tile_overlap_px)
    own_x, own_y = _owned(xs, tw, fw), _owned(ys, th, fh)
    return [
        Tile(x, y, tw, th, (ox[0], oy[0], ox[1], oy[1]))
        for y, oy in zip(ys, own_y, strict=True)
        for x, ox in zip(xs, own_x, strict=True)
    ]


class InputBuilder:
    """Cuts registered frames into padded uint8 network batches; the template side is cut once."""

    def __init__(self, geometry: Geometry, template: np.ndarray) -> None:
        self.geometry = geometry
        self.tiles = plan_tiles(geometry)
        self.input_h, self.input_w = geometry.input_hw()
        self.max_batch = geometry.profile.max.batch
        self._buffer = np.zeros(
            (len(self.tiles), MODEL_CHANNELS, self.input_h, self.input_w), dtype=np.uint8
        )
        self._template = template
        #: Counts the template side's fills: a backend that keeps it on the device (FrameBatch)
        #: uploads it again only when this changes.
        self.template_version = 0
        self._fill(1, template)
        self._template_is_default = True

    def _fill(self, channel: int, image: np.ndarray) -> None:
        if channel == 1:
            self.template_version += 1
        for i, t in enumerate(self.tiles):
            self._buffer[i, channel, : t.height_px, : t.width_px] = image[
                t.y0 : t.y0 + t.height_px, t.x0 : t.x0 + t.width_px
            ]
        g = self.geometry
        fh, fw = g.frame_height_px, g.frame_width_px
        if self.whole_frame and (self.input_h, self.input_w) != (fh, fw):
            # A padded whole frame repeats its last row and column into the padding, in both
            # channels: the device warp (GridSample, border padding) then reads what
            # cv2.BORDER_REPLICATE gives where a moved board's edge samples beyond the frame,
            # not black rows the network would call a defect (seen at 4096x3000 on the H200).
            self._buffer[0, channel, fh:, :fw] = self._buffer[0, channel, fh - 1 : fh, :fw]
            self._buffer[0, channel, :, fw:] = self._buffer[0, channel, :, fw - 1 : fw]

    @property
    def input_hw(self) -> tuple[int, int]:
        """One network input's (padded) height and width: what the device warp's normalised
        coordinates refer to (a padded whole frame lies at its top left)."""
        return self.input_h, self.input_w

    @property
    def whole_frame(self) -> bool:
        """One tile, the whole frame at the input's top left (padded below and right up to the
        size multiple): channel 0 of the batch is the frame itself, so a backend that warps on
        the device (aoi/inference/warp.py) can register it there."""
        g = self.geometry
        t = self.tiles[0]
        whole = (t.x0, t.y0, t.width_px, t.height_px) == (0, 0, g.frame_width_px, g.frame_height_px)
        return len(self.tiles) == 1 and whole

    def check_frame(self, image: np.ndarray) -> None:
        g = self.geometry
        if image.shape[:2] != (g.frame_height_px, g.frame_width_px):
            msg = (
                f"frame must be {g.frame_width_px}x{g.frame_height_px} px as the recipe's geometry "
                f"says, got {image.shape[1]}x{image.shape[0]} px"
            )
            raise FrameError(msg)

    def _template_side(self, template: np.ndarray | None) -> None:
        if template is not None:
            self.check_frame(template)
            self._fill(1, template)
            self._template_is_default = False
        elif not self._template_is_default:
            self._fill(1, self._template)
            self._template_is_default = True

    def batches(
        self, aligned: np.ndarray, template: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, list[Tile]]]:
        """Network batches (views into one preallocated buffer) with the tiles each holds.

        ``template`` replaces the recipe's golden template for this frame only (replayed DeepPCB
        pairs carry their own). A tile's padding stays zero in both channels, so it shows no
        difference to the network (a padded whole frame's repeats its edges, see ``_fill``).
        """
        self.check_frame(aligned)
        self._template_side(template)
        self._fill(0, aligned)
        out = []
        for start in range(0, len(self.tiles), self.max_batch):
            stop = min(start + self.max_batch, len(self.tiles))
            out.append((self._buffer[start:stop], self.tiles[start:stop]))
        return out

    def frame_batch(self, aligned: np.ndarray, template: np.ndarray | None = None) -> FrameBatch:
        """The whole frame as it is, for a backend that takes frames (``takes_frames``): the
        frame is not copied, and the template side is the buffer's, refilled (and its version
        counted) only when ``template`` changes it."""
        if not self.whole_frame:
            msg = "only a whole-frame recipe hands the backend frames (this one is tiled)"
            raise FrameError(msg)
        self.check_frame(aligned)
        self._template_side(template)
        frame = np.ascontiguousarray(aligned)  # the array itself where it is contiguous
        # A pair's test image was not registered: its bytes go up whatever the device holds.
        registered = template is None
        return FrameBatch(frame, self._buffer[0:1, 1:2], self.template_version, registered)

    def for_network(
        self, aligned: np.ndarray, template: np.ndarray | None = None, *, frames: bool = False
    ) -> list[tuple[np.ndarray | FrameBatch, list[Tile]]]:
        """:meth:`batches`, or with ``frames`` the one :meth:`frame_batch` of a whole frame."""
        if frames:
            return [(self.frame_batch(aligned, template), self.tiles)]
        return self.batches(aligned, template)
