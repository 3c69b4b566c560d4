"""Replay a folder of images as if a camera delivered them: plain folders and DeepPCB pairs.

A plain folder gives every image (png, jpg, jpeg, bmp, tif, tiff) in it, sorted by name. A folder
in the DeepPCB layout (``NNNNNNNN_test.jpg`` beside ``NNNNNNNN_temp.jpg``, annotations in
``../<group>_not/NNNNNNNN.txt``) is recognised on its own and searched recursively, so both a
``PCBData`` root and a single group folder work; each frame then carries its golden template and
its ground truth.

Images are decoded when grabbed (a folder can hold thousands), with ``cv2.IMREAD_UNCHANGED``: grey
stays ``HxW``, colour is BGR, alpha is dropped, 16-bit is kept.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from aoi.errors import SourceError, SourceExhausted
from aoi.sources.image_file import missing_part
from aoi.types import DEFECT_CLASSES, Frame, GroundTruth

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})

_TEST_SUFFIX = "_test"
_TEMPLATE_SUFFIX = "_temp"
_ANNOTATION_FORMAT = (
    f"'x1 y1 x2 y2 type' (integers, x1 <= x2, y1 <= y2, type 1..{len(DEFECT_CLASSES)})"
)


@dataclass(frozen=True)
class _Entry:
    """One frame to replay: the image, and for DeepPCB pairs its template and annotation."""

    image: Path
    template: Path | None = None
    annotation: Path | None = None


def read_image(path: Path) -> np.ndarray:
    """Decode an image file as a station image (uint8/uint16, HxW or BGR HxWx3).

    A JPEG, PNG or BMP file cut short is refused (:func:`aoi.sources.image_file.missing_part`):
    OpenCV would return its decoded part with the rest grey, a board with one huge defect.
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        msg = f"{path}: cannot read image file ({err})"
        raise SourceError(msg) from err
    missing = missing_part(data)
    if missing is not None:
        msg = f"{path}: cannot decode image: expected the whole file, found {missing}"
        raise SourceError(msg)
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    except cv2.error as err:
        msg = f"{path}: cannot decode image ({err})"
        raise SourceError(msg) from err
    if img is None:
        msg = f"{path}: cannot decode image (expected a readable png/jpg/bmp/tif file)"
        raise SourceError(msg)
    if img.dtype not in (np.uint8, np.uint16):
        msg = f"{path}: image must be 8 or 16 bit per channel, found {img.dtype}"
        raise SourceError(msg)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    elif img.ndim == 3 and img.shape[2] == 4:
        img = np.ascontiguousarray(img[:, :, :3])
    elif not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        msg = f"{path}: image must be grey, BGR or BGRA, found shape {img.shape}"
        raise SourceError(msg)
    return img


def _parse_annotation_line(line: str) -> list[int] | None:
    """``[x1, y1, x2, y2, type]`` from one annotation line, or None if it is malformed."""
    fields = re.split(r"[,\s]+", line)
    if len(fields) != 5:
        return None
    try:
        values = [int(f) for f in fields]
    except ValueError:
        return None
    x1, y1, x2, y2, class_id = values
    if min(x1, y1) < 0 or x2 < x1 or y2 < y1 or not 1 <= class_id <= len(DEFECT_CLASSES):
        return None
    return values


def read_annotation(path: Path) -> GroundTruth:
    """Parse a DeepPCB annotation file, one defect a line: ``x1 y1 x2 y2 type``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        msg = f"{path}: cannot read annotation ({err})"
        raise SourceError(msg) from err
    boxes: list[list[int]] = []
    class_ids: list[int] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        values = _parse_annotation_line(stripped)
        if values is None:
            msg = f"{path}:{line_no}: expected {_ANNOTATION_FORMAT}, found {stripped!r}"
            raise SourceError(msg)
        boxes.append(values[:4])
        class_ids.append(values[4])
    return GroundTruth(
        np.array(boxes, np.int32).reshape(-1, 4), np.array(class_ids, np.int32).reshape(-1)
    )


def _is_image(path: Path) -> bool:
    hidden = path.name.startswith(".")
    return not hidden and path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _deeppcb_entries(folder: Path) -> list[_Entry]:
    """The DeepPCB pairs under ``folder`` (recursively), or an empty list if there are none."""
    entries: list[_Entry] = []
    unpaired: list[Path] = []
    for test in sorted(folder.rglob(f"*{_TEST_SUFFIX}.jpg")):
        pair_id = test.stem.removesuffix(_TEST_SUFFIX)
        template = test.with_name(f"{pair_id}{_TEMPLATE_SUFFIX}.jpg")
        if not template.is_file():
            unpaired.append(test)
            continue
        annotation = test.parent.parent / f"{test.parent.name}_not" / f"{pair_id}.txt"
        entries.append(_Entry(test, template, annotation))
    if entries and unpaired:
        logger.warning(
            "%s: skipping %d *_test.jpg file(s) without a *_temp.jpg template, first %s",
            folder,
            len(unpaired),
            unpaired[0],
        )
    return entries


class ReplaySource:
    """An :class:`aoi.sources.base.ImageSource` that replays the images of a folder."""

    name = "replay"
    #: Nothing a synthetic board or a stored image can fail to apply.
    warnings: tuple[str, ...] = ()

    def __init__(self, folder: Path, *, loop: bool = False, pattern: str | None = None) -> None:
        """``pattern`` is a glob (``"*.png"``) that narrows a plain folder; ``loop`` repeats it."""
        self.folder = Path(folder)
        self.loop = loop
        self.pattern = pattern
        self.is_deeppcb = False
        self._entries: list[_Entry] | None = None
        self._index = 0
        self._next_frame_id = 0

    def _scan(self) -> list[_Entry]:
        if not self.folder.is_dir():
            what = "is not a folder" if self.folder.exists() else "does not exist"
            msg = f"replay folder {self.folder} {what}; expected a folder of images"
            raise SourceError(msg)
        entries = _deeppcb_entries(self.folder)
        if self.pattern is not None:
            entries = [e for e in entries if e.image.match(self.pattern)]
        self.is_deeppcb = bool(entries)
        if not entries:
            glob = self.pattern or "*"
            entries = [_Entry(p) for p in sorted(self.folder.glob(glob)) if _is_image(p)]
        if not entries:
            kinds = ", ".join(sorted(IMAGE_SUFFIXES))
            narrowed = f" matching {self.pattern!r}" if self.pattern else ""
            msg = f"replay folder {self.folder} holds no images{narrowed}; expected {kinds} files"
            raise SourceError(msg)
        logger.info(
            "replaying %d %s from %s",
            len(entries),
            "DeepPCB pairs" if self.is_deeppcb else "images",
            self.folder,
        )
        return entries

    def _ensure_scanned(self) -> list[_Entry]:
        if self._entries is None:
            self._entries = self._scan()
        return self._entries

    def __len__(self) -> int:
        return len(self._ensure_scanned())

    def __enter__(self) -> ReplaySource:
        self._entries = self._scan()
        self._index = 0
        self._next_frame_id = 0
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._entries = None

    def describe(self) -> str:
        """What the camera light says: the folder whose images are replayed."""
        return f"Replaying stored images ({self.folder})"

    def grab(self, timeout_s: float = 1.0) -> Frame:  # noqa: ARG002 (the protocol's signature)
        """The next image as a Frame; :class:`SourceExhausted` after the last one unless looping.

        A file that cannot be used raises :class:`SourceError` naming it; the next grab goes on
        with the file after it. ``timeout_s`` is unused: files are always at hand.
        """
        if self._entries is None:
            msg = f"replay source {self.folder} is not open; use it in a 'with' block"
            raise SourceError(msg)
        if self._index >= len(self._entries):
            if not self.loop:
                msg = f"replay folder {self.folder}: all {len(self._entries)} frames delivered"
                raise SourceExhausted(msg)
            self._index = 0
        entry = self._entries[self._index]
        # Advance first, so a bad file is skipped by the next grab instead of failing forever.
        self._index += 1
        image = read_image(entry.image)
        template = read_image(entry.template) if entry.template is not None else None
        truth = None
        if entry.annotation is not None and entry.annotation.is_file():
            truth = read_annotation(entry.annotation)
        available_ns = time.perf_counter_ns()
        try:
            frame = Frame(
                image=image,
                frame_id=self._next_frame_id,
                available_ns=available_ns,
                source=self.name,
                name=entry.image.stem,
                template=template,
                truth=truth,
            )
        except (ValueError, TypeError) as err:
            paired = f" (template {entry.template})" if entry.template else ""
            msg = f"{entry.image}{paired}: not a usable frame: {err}"
            raise SourceError(msg) from err
        self._next_frame_id += 1
        return frame
