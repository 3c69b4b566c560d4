"""Exception classes of the PLC link.

All derive from :class:`aoi.errors.AoiError`, so the CLI reports them like any other known failure.
Messages name the register or setting, what was expected and what was found.
"""

from __future__ import annotations

from aoi.errors import AoiError


class PlcError(AoiError):
    """Base class of every error the PLC link raises on purpose."""


class PlcConfigError(PlcError):
    """The register map or the link settings are inconsistent (overlapping fields, bad spec)."""


class PlcLinkError(PlcError):
    """The Modbus TCP peer cannot be reached, did not answer, or answered with an exception."""


class UnknownProductCode(PlcError):
    """A recipe change named a product code that no recipe carries."""
