"""The one protocol every image source implements."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Protocol, runtime_checkable

from aoi.types import Frame


@runtime_checkable
class ImageSource(Protocol):
    """Something that delivers frames: a GenICam camera, a replay folder, synthetic boards.

    A source is a context manager: ``__enter__`` opens it (device, files) and ``__exit__`` releases
    everything it holds. ``grab`` returns the next frame, already copied out of any driver buffer,
    or raises :class:`aoi.errors.CameraTimeout` when none arrives in ``timeout_s`` (never hangs),
    :class:`aoi.errors.SourceExhausted` when a finite source is done, or another
    :class:`aoi.errors.SourceError` when the source fails.
    """

    name: str
    #: What the source could not do as the recipe asked (a camera node it lacks), in words;
    #: empty when everything applied. The camera light shows them.
    warnings: Sequence[str]

    def __enter__(self) -> ImageSource: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def grab(self, timeout_s: float = 1.0) -> Frame: ...

    def describe(self) -> str:
        """The source in an operator's words, for the camera light ("Camera acA2440 serial 123")."""
        ...
