"""The defect log and image archive: every verdict recorded, nothing lost, never on the cycle.

- :class:`Storage` (``storage.py``): the pipeline sink that journals each result and feeds the
  background writer and the image archive; ``storage.health`` carries its alarms.
- ``tables.py``: the schema; ``migrations/``: its Alembic revisions, run at start-up.
- ``queries.py``: yield, Pareto, false calls, cycle times, lookups, reviews and audit events.
- ``cli.py``: ``aoi report`` and the helpers ``aoi run``/``aoi bench`` use for ``--db``.
"""

from aoi.storage.errors import JournalError, ReviewError, SchemaError, StorageError
from aoi.storage.health import HealthSnapshot
from aoi.storage.storage import Storage, StoredInspection
from aoi.storage.tables import Verification

__all__ = [
    "HealthSnapshot",
    "JournalError",
    "ReviewError",
    "SchemaError",
    "Storage",
    "StorageError",
    "StoredInspection",
    "Verification",
]
