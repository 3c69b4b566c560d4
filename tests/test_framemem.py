"""Frame memory: a pool's slot goes back only when nothing reads the frame's pixels any more.

Page-locked memory needs a CUDA device, which this machine lacks; these tests give the pool
ordinary ctypes buffers as its slots (a stand-in for ``cudaMallocHost``), which exercises the
same leasing, reuse, limit and closing. The page-locked allocator itself is measured on the
GPU machine (tests/inference/test_pinned_frames.py skips here, saying so).
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Callable

import numpy as np

from aoi.framemem import HEAP, SlotPool


class _Slots:
    """ctypes buffers standing in for page-locked memory; records what is alive."""

    def __init__(self, fail: bool = False) -> None:
        self.alive: dict[int, ctypes.Array] = {}
        self.fail = fail

    def __call__(self, nbytes: int) -> tuple[int, Callable[[], None]] | None:
        if self.fail:
            return None
        buf = (ctypes.c_uint8 * nbytes)()
        address = ctypes.addressof(buf)
        self.alive[address] = buf
        return address, lambda: self.alive.pop(address)


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def test_a_slot_is_reused_only_after_the_frame_and_its_views_are_gone() -> None:
    slots = _Slots()
    with SlotPool("test", slots, 1 << 20) as pool:
        frame = pool.empty((100, 200), np.uint8)
        frame[:] = 7
        first = _address(frame)
        assert first in slots.alive and frame.shape == (100, 200) and frame.flags.writeable
        view = frame[10:20, ::2]
        del frame
        gc.collect()
        other = pool.empty((100, 200), np.uint8)  # the view still reads the first slot
        assert _address(other) != first and pool.slots_made == 2
        assert (view == 7).all()
        del view, other
        gc.collect()
        again = pool.empty((100, 200), np.uint8)
        assert pool.slots_made == 2  # no new slot: one of the two came back
        assert _address(again) in slots.alive
        del again
    gc.collect()
    assert slots.alive == {}  # closing freed the free slots, the last one when its frame went


def test_a_full_pool_hands_out_heap_frames_and_an_allocation_failure_too() -> None:
    slots = _Slots()
    with SlotPool("test", slots, 2 * 64 * 64) as pool:
        held = [pool.empty((64, 64), np.uint8) for _ in range(2)]
        extra = pool.empty((64, 64), np.uint8)
        assert pool.overflows == 1 and pool.slots_made == 2
        assert _address(extra) not in slots.alive and extra.shape == (64, 64)
        assert all(_address(h) in slots.alive for h in held)
    refused = _Slots(fail=True)
    with SlotPool("test", refused, 1 << 20) as pool:
        a = pool.empty((8, 8), np.float32)
        assert a.dtype == np.float32 and a.shape == (8, 8) and pool.overflows == 1
        refused.fail = False  # the failure gave its bytes back: the next frame gets a slot
        b = pool.empty((8, 8), np.float32)
        assert _address(b) in refused.alive and pool.slots_made == 1
        del b
    gc.collect()
    assert refused.alive == {}


def test_a_closed_pool_gives_heap_frames_and_frees_a_slot_when_its_frame_goes() -> None:
    slots = _Slots()
    pool = SlotPool("test", slots, 1 << 20)
    with pool:
        kept = pool.empty((32,), np.uint16)
        kept[:] = np.arange(32)
    assert len(slots.alive) == 1  # still read by ``kept``
    after = pool.empty((32,), np.uint16)
    assert _address(after) not in slots.alive
    np.testing.assert_array_equal(kept, np.arange(32))
    del kept
    gc.collect()
    assert slots.alive == {}


def test_heap_memory_is_plain_numpy() -> None:
    a = HEAP.empty((3, 4), np.uint8)
    assert a.shape == (3, 4) and a.dtype == np.uint8 and a.flags.owndata
