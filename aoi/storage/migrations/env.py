"""Alembic environment: migrations run on the connection the station hands over.

There is no alembic.ini: :meth:`aoi.storage.db.Database.upgrade` builds the Config in code and
puts its open connection (inside a transaction) into ``config.attributes["connection"]``.
SQLite gets batch mode, so that a column change copies the table as SQLite requires.
"""

from __future__ import annotations

from alembic import context

from aoi.storage.errors import SchemaError
from aoi.storage.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    msg = (
        "aoi migrations run on a connection: call aoi.storage.db.Database(url).upgrade(), "
        "not the alembic command line"
    )
    raise SchemaError(msg)

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
