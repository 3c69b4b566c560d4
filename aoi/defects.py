"""The one detection type: defects found on a board and the defects known to be on it.

:class:`Defects` holds N defects as columns of numpy arrays (boxes, class ids, scores, areas), in
the style of roboflow/supervision's ``Detections``; :class:`GroundTruth` holds the same box and
class columns without scores. Both check every column once, at construction. Iterating a
``Defects`` yields the per-item :class:`Defect` view, so code that loops over defects reads one
defect at a time. :mod:`aoi.types` re-exports everything here.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Self, overload

import numpy as np

#: The six bare-board defect classes of DeepPCB, in the order of its annotation ids 1..6.
DEFECT_CLASSES: tuple[str, ...] = (
    "open",
    "short",
    "mousebite",
    "spur",
    "spurious_copper",
    "pin_hole",
)


#: The columns of a box collection: dtype kinds numpy may give them, in words, and the shape
#: of one row. Shared by :class:`Defects` and :class:`GroundTruth`, whose fields are named so.
_COLUMNS: dict[str, tuple[str, str, tuple[int, ...]]] = {
    "bbox_xyxy_px": ("iu", "integer", (4,)),
    "class_ids": ("iu", "integer", ()),
    "scores": ("f", "floating-point", ()),
    "areas_px": ("iu", "integer", ()),
}


def _checked_column(owner: str, name: str, value: object, rows: int | None) -> np.ndarray:
    """The column as a read-only copy, after its type, dtype and shape are checked."""
    kinds, words, row_shape = _COLUMNS[name]
    if not isinstance(value, np.ndarray):
        msg = f"{owner}.{name} must be a numpy array, got {type(value).__name__}"
        raise TypeError(msg)
    if value.dtype.kind not in kinds:
        msg = f"{owner}.{name} must be {words}, got dtype {value.dtype}"
        raise ValueError(msg)
    if (
        value.ndim != 1 + len(row_shape)
        or value.shape[1:] != row_shape
        or (rows is not None and value.shape[0] != rows)
    ):
        dims = ["N" if rows is None else str(rows), *map(str, row_shape)]
        shown = f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"
        msg = f"{owner}.{name} must have shape {shown}, got {value.shape}"
        raise ValueError(msg)
    # A read-only copy (a few rows): the caller's array stays its own, and what flows is frozen.
    column = value.copy()
    column.flags.writeable = False
    return column


@functools.cache
def _names(cls: type) -> tuple[str, ...]:
    """The column names of a box collection class, in field order."""
    return tuple(f.name for f in fields(cls))


def _first_bad(owner: str, name: str, bad: np.ndarray, column: np.ndarray, expected: str) -> None:
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        found = column[row].tolist()
        msg = f"{owner}.{name} must {expected}, found {found} at row {row} ({int(bad.sum())} bad)"
        raise ValueError(msg)


@dataclass(frozen=True, eq=False)
class LabelledBoxes:
    """Boxes and their defect classes as columns, one row per defect: what found and known share.

    The base of :class:`Defects` (found) and :class:`GroundTruth` (known). Boxes are
    ``x0, y0, x1, y1`` in template (registered frame) pixels, corners inclusive; class ids index
    :data:`DEFECT_CLASSES` from 1 (0 is background), as in DeepPCB's annotation files. Every
    column is checked once, at construction, and kept as a read-only copy.
    """

    bbox_xyxy_px: np.ndarray
    class_ids: np.ndarray

    def __post_init__(self) -> None:
        owner = type(self).__name__
        boxes = _checked_column(owner, "bbox_xyxy_px", self.bbox_xyxy_px, None)
        object.__setattr__(self, "bbox_xyxy_px", boxes)
        for name in _names(type(self))[1:]:
            column = _checked_column(owner, name, getattr(self, name), len(boxes))
            object.__setattr__(self, name, column)
        if len(boxes):
            self._check_values()

    def _check_values(self) -> None:
        """Raise ValueError naming the first bad row of any column (called when there are rows)."""
        owner, boxes, ids = type(self).__name__, self.bbox_xyxy_px, self.class_ids
        bad = np.any(boxes[:, 2:] < boxes[:, :2], axis=1)
        _first_bad(owner, "bbox_xyxy_px", bad, boxes, "hold x1 >= x0 and y1 >= y0 in every box")
        bad = (ids < 1) | (ids > len(DEFECT_CLASSES))
        _first_bad(owner, "class_ids", bad, ids, f"lie in 1..{len(DEFECT_CLASSES)}")

    @classmethod
    def _checked_already(cls, *columns: np.ndarray) -> Self:
        """Rows known valid, the columns in field order: taken from collections that were
        checked when built (selections, merges and orderings keep every row valid), or built
        valid by their caller (the postprocessor's candidates). The columns are only made
        read-only, not re-checked or copied (the cycle builds and selects several a board)."""
        out = object.__new__(cls)
        fields_ = out.__dict__  # what object.__setattr__ would write, without its lookups
        for name, column in zip(_names(cls), columns, strict=True):
            column.setflags(write=False)  # a fresh array, or a view of a read-only one
            fields_[name] = column
        return out

    @classmethod
    def empty(cls) -> Self:
        """No rows."""
        columns = {}
        for name in _names(cls):
            _, words, row_shape = _COLUMNS[name]
            dtype = np.float64 if words.startswith("f") else np.int64
            columns[name] = np.zeros((0, *row_shape), dtype)
        return cls(**columns)

    @classmethod
    def merge(cls, parts: Iterable[Self]) -> Self:
        """The rows of several collections of this type, in order (supervision's ``merge``)."""
        parts = list(parts)
        for p in parts:
            if type(p) is not cls:
                msg = f"{cls.__name__}.merge takes {cls.__name__} only, got {type(p).__name__}"
                raise TypeError(msg)
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        return cls._checked_already(
            *(np.concatenate([getattr(p, name) for p in parts]) for name in _names(cls))
        )

    def __len__(self) -> int:
        return len(self.class_ids)

    def select(self, index: slice | np.ndarray | Sequence[int]) -> Self:
        """The rows a boolean mask, an index array or a slice picks (the type stays)."""
        if isinstance(index, int | np.integer):
            msg = (
                f"{type(self).__name__} rows are picked by mask, index array or slice, got {index}"
            )
            raise TypeError(msg)
        columns, names = self.__dict__, _names(type(self))
        if isinstance(index, np.ndarray):
            if index.dtype == bool:
                if index.shape != (len(self),):
                    msg = (
                        f"{type(self).__name__} mask must have shape ({len(self)},), "
                        f"got {index.shape}"
                    )
                    raise IndexError(msg)
                index = index.nonzero()[0]
            if index.ndim == 1 and index.dtype.kind in "iu":
                # The rows indexing picks (take: a quarter of its cost on a few rows).
                picked = (columns[name].take(index, axis=0) for name in names)
                return self._checked_already(*picked)
        return self._checked_already(*(columns[name][index] for name in names))

    def __getitem__(self, index: slice | np.ndarray | Sequence[int]) -> Self:
        return self.select(index)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(
            np.array_equal(getattr(self, name), getattr(other, name)) for name in _names(type(self))
        )

    #: Columns of arrays have no hash (``__eq__`` compares them).
    __hash__ = None  # type: ignore[assignment]

    @property
    def class_names(self) -> tuple[str, ...]:
        """The class name of every row, from :data:`DEFECT_CLASSES`."""
        return tuple(DEFECT_CLASSES[int(c) - 1] for c in self.class_ids)


@dataclass(frozen=True, eq=False)
class GroundTruth(LabelledBoxes):
    """Known defects of a board (from the synthetic generator or an annotation file).

    Boxes and class ids only: a truth has no score, and its box is all an annotation knows of
    its size, so it carries neither column rather than made-up ones.
    """

    @property
    def is_defective(self) -> bool:
        return bool(len(self))


@dataclass(frozen=True, eq=False)
class Defects(LabelledBoxes):
    """Defects (or candidates) found on one board, one row each, in the style of supervision's
    ``Detections``.

    ``scores`` lie in 0..1; ``areas_px`` count the defect's own pixels (not its box's). Index
    with a boolean mask, an index array or a slice for another ``Defects``; with an int, or by
    iterating, for the per-item :class:`Defect` view.
    """

    scores: np.ndarray
    areas_px: np.ndarray

    def _check_values(self) -> None:
        super()._check_values()
        s = self.scores
        bad = ~((s >= 0.0) & (s <= 1.0))  # NaN fails both comparisons
        _first_bad("Defects", "scores", bad, s, "lie in 0..1")
        _first_bad("Defects", "areas_px", self.areas_px < 0, self.areas_px, "be >= 0")

    @classmethod
    def from_items(cls, items: Iterable[Defect]) -> Defects:
        """Columns from per-item :class:`Defect` views (tests, synthetic results)."""
        rows = list(items)
        return cls(
            np.array([d.bbox_xyxy_px for d in rows], np.int64).reshape(-1, 4),
            np.array([d.class_id for d in rows], np.int64),
            np.array([d.score for d in rows], np.float64),
            np.array([d.area_px for d in rows], np.int64),
        )

    def item(self, i: int) -> Defect:
        """Row ``i`` (negative counts from the end) as a :class:`Defect`."""
        n = len(self)
        if not -n <= i < n:
            msg = f"Defects index {i} out of range for {n} rows"
            raise IndexError(msg)
        cid = int(self.class_ids[i])
        x0, y0, x1, y1 = (int(v) for v in self.bbox_xyxy_px[i])
        return Defect(
            cid,
            DEFECT_CLASSES[cid - 1],
            (x0, y0, x1, y1),
            int(self.areas_px[i]),
            float(self.scores[i]),
        )

    @overload
    def __getitem__(self, index: int) -> Defect: ...
    @overload
    def __getitem__(self, index: slice | np.ndarray | Sequence[int]) -> Defects: ...
    def __getitem__(self, index: int | slice | np.ndarray | Sequence[int]) -> Defect | Defects:
        if isinstance(index, int | np.integer):
            return self.item(int(index))
        return self.select(index)

    def __iter__(self) -> Iterator[Defect]:
        return (self.item(i) for i in range(len(self)))

    def sorted_by_score(self) -> Defects:
        """The rows ordered by descending score (ties keep their order)."""
        return self.select(np.argsort(-self.scores, kind="stable"))

    def top(self) -> Defect | None:
        """The highest-scoring defect (the first of equals), or None when there is none."""
        return self.item(int(np.argmax(self.scores))) if len(self) else None


@dataclass(frozen=True)
class Defect:
    """One defect found on a board, in template (registered frame) pixel coordinates."""

    class_id: int
    class_name: str
    bbox_xyxy_px: tuple[int, int, int, int]
    area_px: int
    score: float

    def __post_init__(self) -> None:
        if not 1 <= self.class_id <= len(DEFECT_CLASSES):
            msg = f"Defect.class_id must lie in 1..{len(DEFECT_CLASSES)}, got {self.class_id}"
            raise ValueError(msg)
        x0, y0, x1, y1 = self.bbox_xyxy_px
        if x1 < x0 or y1 < y0:
            msg = f"Defect.bbox_xyxy_px must have x1 >= x0 and y1 >= y0, got {self.bbox_xyxy_px}"
            raise ValueError(msg)
        if self.area_px < 0:
            msg = f"Defect.area_px must be >= 0, got {self.area_px}"
            raise ValueError(msg)
        if not 0.0 <= self.score <= 1.0:
            msg = f"Defect.score must lie in 0..1, got {self.score}"
            raise ValueError(msg)
