"""Alembic migrations of the defect log, run by :meth:`aoi.storage.db.Database.upgrade`."""
