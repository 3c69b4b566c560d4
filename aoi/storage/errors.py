"""Exception classes of the defect log and image archive."""

from __future__ import annotations

from aoi.errors import AoiError, RecordNotDurable


class StorageError(AoiError):
    """The database, the journal or the image archive cannot do what was asked."""


class SchemaError(StorageError):
    """The database's schema cannot be brought to the revision this version of aoi needs."""


class JournalError(StorageError):
    """The append-only journal cannot be written or read."""


class ReviewError(StorageError):
    """A review names a defect that does not exist or a decision that is not known."""


class JournalUnavailable(JournalError, RecordNotDurable):
    """The journal refused an inspection record (disk full or failing): the verdict is not
    durable, so the line must be answered ERROR for that part."""
