"""Checks the registration steps on every device share (tests/inference/test_devreg.py,
test_kernreg.py)."""

from __future__ import annotations

import threading

import numpy as np

from aoi.vision.registration import Registrar


def assert_threads_get_their_own_answers(registrar: Registrar) -> None:
    """Four threads registering different frames through one set of device buffers, three
    times each, get the answers each frame gets alone."""
    board = registrar.template
    frames = [np.roll(board, (i, -i), axis=(0, 1)) for i in range(1, 5)]
    alone = [registrar.register(f).transform for f in frames]
    found: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        for _ in range(3):
            found[i] = registrar.register(frames[i]).transform

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(frames))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, transform in enumerate(alone):
        np.testing.assert_array_equal(found[i], transform)
