"""What the review screen needs from the defect log and the archive, without Qt.

A defect's box is in template coordinates; the archive keeps the frame as taken. So the archived
image is warped back into template coordinates with the registration the cycle found (stored
with the inspection as shift and rotation of the image centre), and then the board and the golden
template are cut at the same box: the reviewer compares like with like.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import select

from aoi.errors import AoiError
from aoi.pixels import to_mono8
from aoi.recipe import load_recipe
from aoi.recipe.template import load_template
from aoi.storage.db import DB_ERRORS, Database
from aoi.storage.queries import InspectionRecord, find_inspections
from aoi.storage.tables import Inspection, Verification

log = logging.getLogger(__name__)


REASONS = (
    "",
    "cosmetic, within the customer's limits",
    "dust or contamination on the board",
    "misregistration: the board is fine",
    "template mismatch: board revision changed",
    "lighting or reflection",
)
DECISIONS = {
    "confirm": (Verification.CONFIRMED, "Confirmed"),
    "false_call": (Verification.FALSE_CALL, "False call"),
    "accept": (Verification.ACCEPTED, "Accepted"),
}
#: "open" is also a defect class, so a defect nobody decided yet is "pending".
STATE_TEXT = {v.value: label for v, label in DECISIONS.values()} | {
    Verification.NOT_VERIFIED.value: "pending"
}
#: Boards listed at a time (oldest first); the count above the list is the true total.
PAGE = 200


def queue_item_text(board: InspectionRecord, when: str) -> str:
    """A board's two lines in the review list: verdict, time, serial; pending defects."""
    pending = sum(d.review_state == Verification.NOT_VERIFIED.value for d in board.defects)
    top = max(board.defects, key=lambda d: d.score, default=None)
    top_class = top.class_name.replace("_", " ") if top else ""
    return (
        f"{board.verdict:<6} {when}   {board.serial or f'#{board.inspection_id}'}\n"
        f"        {pending} pending of {len(board.defects)} · {top_class}"
    )


def waiting_text(waiting: int, listed: int) -> str:
    """The count above the review list: every board waiting, and how many are listed."""
    n = max(waiting, listed)
    if not n:
        return "Queue empty"
    text = f"{n} board{'s' if n != 1 else ''} waiting"
    return text + (f" (oldest {listed} listed)" if n > listed else "")


def find_board(db: Database, text: str, *, station_id: str) -> InspectionRecord | None:
    """The newest inspection of the board with this serial, else this PLC part number."""
    found = find_inspections(db, serial=text, station_id=station_id, limit=1)
    if not found and text.isdigit():
        found = find_inspections(db, part_sequence=int(text), station_id=station_id, limit=1)
    return found[0] if found else None


@dataclass(frozen=True)
class CropPair:
    board: np.ndarray
    template: np.ndarray
    #: The defect's box inside the crops (x0, y0, x1, y1).
    box: tuple[int, int, int, int]


def registration_of(db: Database, inspection_uuid: str) -> dict[str, float] | None:
    """The stored alignment of one inspection (shift_x_px, shift_y_px, rotation_deg, ...)."""
    stmt = select(Inspection.registration).where(Inspection.uuid == uuid.UUID(inspection_uuid))
    try:
        with db.session() as s:
            return s.execute(stmt).scalar_one_or_none()
    except DB_ERRORS as err:
        log.warning("registration of %s not read: %s", inspection_uuid, err)
        return None


def template_to_frame(reg: dict[str, float] | None, width_px: int, height_px: int) -> np.ndarray:
    """The 2x3 matrix mapping template to frame coordinates, rebuilt from the stored values.

    The cycle stores the shift of the image centre and the rotation (``Registration``); the
    motion is rigid, so those give the whole transform back.
    """
    if not reg:
        return np.eye(2, 3)
    a = math.radians(reg.get("rotation_deg") or 0.0)
    rot = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    centre = np.array([(width_px - 1) / 2, (height_px - 1) / 2])
    shift = np.array([reg.get("shift_x_px") or 0.0, reg.get("shift_y_px") or 0.0])
    t = centre + shift - rot @ centre
    return np.hstack([rot, t[:, None]])


#: How long after the inspection an archived image may still be on its way to disk (the archive
#: writes it from its own queue after the row is logged).
ARCHIVE_GRACE = timedelta(seconds=60)


def unreadable_image_note(image_path: Path, inspected_at: datetime, now: datetime) -> str:
    """What the review screen says when a board's archived image cannot be shown."""
    if image_path.exists() or now - inspected_at < ARCHIVE_GRACE:
        return "The archived image is not readable (yet): try Refresh."
    return (
        "This board's image is not in the archive: it was dropped (archive queue or disk full) "
        "or deleted by retention. Its defects are all logged."
    )


def aligned_board(
    image_path: Path, reg: dict[str, float] | None, size: tuple[int, int]
) -> np.ndarray | None:
    """The archived frame in template coordinates (grey, ``size`` = (w, h)), or None."""
    image = cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED)
    if image is None:
        return None
    image = to_mono8(image[:, :, :3] if image.ndim == 3 else image)
    if image.shape[::-1] != size:
        return None
    m = template_to_frame(reg, *size)
    if np.allclose(m, np.eye(2, 3)):
        return image
    return cv2.warpAffine(
        image,
        m,
        size,
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def crop_pair(
    board: np.ndarray,
    template: np.ndarray,
    bbox: tuple[int, int, int, int],
    *,
    margin_px: int = 24,
    min_px: int = 72,
) -> CropPair:
    """The same square-ish window of board and template around ``bbox``, kept inside the image."""
    h, w = template.shape[:2]
    x0, y0, x1, y1 = bbox
    cw = max(min_px, x1 - x0 + 2 * margin_px)
    ch = max(min_px, y1 - y0 + 2 * margin_px)
    side = max(cw, ch)
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    left = int(min(max(0, cx - side // 2), max(0, w - side)))
    top = int(min(max(0, cy - side // 2), max(0, h - side)))
    right, bottom = min(w, left + side), min(h, top + side)
    return CropPair(
        board[top:bottom, left:right].copy(),
        template[top:bottom, left:right].copy(),
        (x0 - left, y0 - top, x1 - left, y1 - top),
    )


class TemplateCache:
    """Golden templates by recipe name, read once from the recipes folder."""

    def __init__(self, recipes_dir: Path) -> None:
        self.recipes_dir = recipes_dir
        self._cache: dict[str, np.ndarray | None] = {}

    def get(self, recipe_name: str) -> np.ndarray | None:
        if recipe_name not in self._cache:
            self._cache[recipe_name] = self._load(recipe_name)
        return self._cache[recipe_name]

    def _load(self, recipe_name: str) -> np.ndarray | None:
        path = self.recipes_dir / f"{recipe_name}.toml"
        try:
            loaded = load_recipe(path, check_files=False)
            g = loaded.recipe.geometry
            return load_template(
                loaded.template_path, g.frame_width_px, g.frame_height_px, str(path)
            )
        except AoiError as err:
            log.warning("no template for %s: %s", recipe_name, err)
            return None
