"""Where a source puts the frames it hands out: ordinary heap memory, or slots of a pool.

On a GPU station every board goes to the device once, and a copy from ordinary (pageable) host
memory is staged by the driver: 0.94-1.05 ms for a 12 MB panel frame on the H200's host, p99
1.6-8.1 ms, against 0.24 / 0.30-0.34 ms from page-locked memory (docs/benchmarks.md, "Issue 15,
twelfth round"). A source already copies each frame once (out of the camera's reused buffer, or
a prerendered board once); :class:`SlotPool` lets that copy land in page-locked memory, so the
upload is a direct transfer. :mod:`aoi.inference.pinned_frames` gives the page-locked slots.

A slot goes back to its pool only when nothing refers to the frame's pixels any more: the array
handed out is made from a lease object and refers to it, every numpy view refers to that array,
so the lease lives as long as any of them, and the lease's finaliser returns the slot. A frame
still shown by the GUI or queued for storage therefore keeps its slot, and the pool never hands
out memory that something still reads. When every slot is taken and the pool is at its size
limit, frames come from the heap instead: slower to upload, never wrong.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)


class FrameMemory(Protocol):
    """Allocates the frames a source hands out."""

    name: str

    def empty(self, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        """An uninitialised array the caller fills and hands out as a frame's image."""
        ...


class HeapMemory:
    """Ordinary numpy arrays (a CPU station, or a GPU station without page-locked memory)."""

    name = "heap"

    def empty(self, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        return np.empty(shape, dtype)


HEAP = HeapMemory()

#: Allocates ``nbytes`` of slot memory: (address, function that frees it), or None where it
#: cannot (the allocator logs why; that frame comes from the heap).
Allocate = Callable[[int], "tuple[int, Callable[[], None]] | None"]


class _Lease:
    """Owns one handed-out slot: the array made from it refers to it (its views to that array)."""

    __slots__ = ("__array_interface__", "__weakref__")

    def __init__(self, address: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.__array_interface__ = {
            "data": (address, False),
            "shape": shape,
            "typestr": dtype.str,
            "version": 3,
        }


class SlotPool:
    """Reusable slots of ``allocate``'s memory, up to ``limit_bytes`` in all; a context manager
    (closing frees the free slots now and every leased one when its frame is gone)."""

    def __init__(self, name: str, allocate: Allocate, limit_bytes: int) -> None:
        self.name = name
        self._allocate = allocate
        self.limit_bytes = limit_bytes
        self._lock = threading.RLock()  # a finaliser may run inside empty() on the same thread
        self._free: dict[int, list[tuple[int, Callable[[], None]]]] = {}
        self._held_bytes = 0
        self._open = False
        #: Frames handed out from the heap because the pool was full (logged once).
        self.overflows = 0
        #: Slots made so far (each reused for later frames of its size).
        self.slots_made = 0

    def __enter__(self) -> SlotPool:
        self._open = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            self._open = False
            free, self._free = self._free, {}
        for slots in free.values():
            for _address, release in slots:
                release()

    def empty(self, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        kind = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * kind.itemsize
        slot = self._take(nbytes)
        if slot is None:
            return HEAP.empty(shape, kind)
        lease = _Lease(slot[0], tuple(shape), kind)
        weakref.finalize(lease, self._give_back, nbytes, slot)
        return np.asarray(lease)

    def _take(self, nbytes: int) -> tuple[int, Callable[[], None]] | None:
        with self._lock:
            if not self._open:
                return None
            free = self._free.get(nbytes)
            if free:
                return free.pop()
            if self._held_bytes + nbytes > self.limit_bytes:
                if self.overflows == 0:
                    log.warning(
                        "%s frame memory: all %d MB hold frames still in use; further frames "
                        "come from ordinary memory (slower to upload)",
                        self.name,
                        self._held_bytes >> 20,
                    )
                self.overflows += 1
                return None
            self._held_bytes += nbytes
        slot = self._allocate(nbytes)
        with self._lock:
            if slot is None:
                self._held_bytes -= nbytes
                self.overflows += 1
            else:
                self.slots_made += 1
        return slot

    def _give_back(self, nbytes: int, slot: tuple[int, Callable[[], None]]) -> None:
        with self._lock:
            if self._open:
                self._free.setdefault(nbytes, []).append(slot)
                return
            self._held_bytes -= nbytes
        slot[1]()
