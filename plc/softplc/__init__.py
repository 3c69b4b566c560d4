"""A soft PLC: a real Modbus TCP peer that runs the line's side of the handshake.

It behaves like the PLC program a line integrator writes: it beats its heartbeat, watches the
station's, optionally loads a recipe by product code first, then for every part waits for READY,
writes the part sequence and serial, raises TRIGGER, drops it on TRIGGER_ACK, waits for
RESULTS_VALID, checks the sequence echo and the inspection id, acknowledges, and counts OK / NG /
REVIEW / ERROR, missed, mismatched and timed-out parts. When the station latches ERROR it pulses
CLEAR_ERROR (and counts the error code), as an automatic line would after logging the alarm.

:class:`SoftPlcLogic` is the program (pure: one :meth:`~SoftPlcLogic.scan` per PLC cycle,
``program.py``); :class:`SoftPlc` runs it on a thread over a :class:`~plc.peer.RegisterPeer`,
either serving its own registers (the station is the client) or polling the station's (the
station serves) (``runner.py``); :class:`SimReport` is what it counted (``report.py``).
"""

from plc.softplc.program import SimTiming, SoftPlcLogic, Step
from plc.softplc.report import SimReport
from plc.softplc.runner import SoftPlc

__all__ = ["SimReport", "SimTiming", "SoftPlc", "SoftPlcLogic", "Step"]
