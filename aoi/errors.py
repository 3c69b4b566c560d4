"""Exception classes of the station core.

Every error the station raises on purpose derives from :class:`AoiError`, so the cycle loop can
turn a known failure into an ERROR verdict without catching programming errors by accident.
Messages say what was expected and what was found, and name the file and field where there is one.
"""

from __future__ import annotations


class AoiError(Exception):
    """Base class of every error the station raises on purpose."""


#: What a bug in the station's own code, or a library it calls, raises. The cycle answers the
#: part ERROR (kind INTERNAL) and logs the traceback instead of letting its thread die; the tuple
#: is named, not ``Exception``, so KeyboardInterrupt, SystemExit and GeneratorExit still pass.
UNEXPECTED_ERRORS: tuple[type[Exception], ...] = (
    ArithmeticError,
    AssertionError,
    AttributeError,
    BufferError,
    LookupError,
    MemoryError,
    OSError,
    RuntimeError,
    TypeError,
    ValueError,
)


class RecipeError(AoiError):
    """A recipe file is missing, malformed or fails validation."""


class StationConfigError(AoiError):
    """The station configuration file is missing, malformed or fails validation."""


class SourceError(AoiError):
    """An image source cannot be opened or delivers something unusable."""


class CameraError(SourceError):
    """A GenICam camera or its GenTL producer failed."""


class CameraTimeout(CameraError):
    """No frame arrived within the fetch timeout."""


class CameraLost(CameraError):
    """The camera is gone (unplugged, powered off, its acquirer destroyed); reconnecting."""


class SourceExhausted(SourceError):
    """A finite source (a replay folder) has delivered its last frame."""


class FrameError(AoiError):
    """A frame does not match what the recipe expects (size, type, channels)."""


class RegistrationError(AoiError):
    """The board under test could not be aligned to the golden template."""


class ModelError(AoiError):
    """A model file is missing, unreadable or does not honour the station's input contract."""


class InferenceError(AoiError):
    """An inference backend failed to run, or was given an input outside its profile."""


class RecordNotDurable(AoiError):
    """A critical-path sink could not record the verdict durably (the journal's disk is full or
    failing): no later sink may see that verdict; the line gets an ERROR instead."""
