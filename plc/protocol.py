"""What the PLC link's registers mean: the fields of both blocks, their bits and codes.

Two blocks of holding registers: the PLC writes the *PLC block* (control bits, heartbeat, part
sequence, command, serial text) and the station writes the *station block* (status bits,
heartbeat, inspection id, result, error code). This module says what each field holds and at which
offset in its block it sits by default; :mod:`plc.registers` places the blocks on registers and
encodes them to words. ``plc/README.md`` carries the same tables for PLC programmers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

#: Most registers one Modbus request may write (FC16: 123) or read (FC3: 125).
MAX_BLOCK_WORDS = 123
U16_MAX = 0xFFFF
U32_MAX = 0xFFFF_FFFF


class ControlBit(enum.IntFlag):
    """Bits of the PLC's ``control`` register."""

    TRIGGER_ENABLE = 1 << 0
    TRIGGER = 1 << 1
    RESULT_ACK = 1 << 2
    CMD_EXECUTE = 1 << 3
    CLEAR_ERROR = 1 << 4


#: Every bit the station understands in ``control``; any other bit set is a malformed word.
CONTROL_BITS_DEFINED = int(
    ControlBit.TRIGGER_ENABLE
    | ControlBit.TRIGGER
    | ControlBit.RESULT_ACK
    | ControlBit.CMD_EXECUTE
    | ControlBit.CLEAR_ERROR
)


class StatusBit(enum.IntFlag):
    """Bits of the station's ``status`` register."""

    READY = 1 << 0
    TRIGGER_ACK = 1 << 1
    BUSY = 1 << 2
    RESULTS_VALID = 1 << 3
    RESULT_TOGGLE = 1 << 4
    MISSED_TRIGGER = 1 << 5
    CMD_DONE = 1 << 6
    CMD_FAILED = 1 << 7
    ERROR = 1 << 8
    ONLINE = 1 << 9


class CommandCode(enum.IntEnum):
    """Values of ``command_code``; the command runs on a rising edge of CMD_EXECUTE."""

    NONE = 0
    LOAD_RECIPE = 1  # argument: the product code of the recipe (1..65535)
    SET_ONLINE = 2  # argument: 1 online, 0 offline


class ErrorCode(enum.IntEnum):
    """Values of ``error_code``: why ERROR or CMD_FAILED is set (0: no error)."""

    NONE = 0
    PLC_HEARTBEAT_LOST = 1
    LINK_LOST = 2
    CAMERA_TIMEOUT = 3
    BAD_FRAME = 4
    INSPECTION_FAILED = 5
    INSPECTION_TIMEOUT = 6
    RESULT_ACK_TIMEOUT = 7
    UNKNOWN_COMMAND = 8
    UNKNOWN_PRODUCT_CODE = 9
    RECIPE_LOAD_FAILED = 10
    BAD_REGISTER_VALUE = 11
    STATION_STOPPING = 12
    COMMAND_NOT_SUPPORTED = 13
    CAMERA_LOST = 14
    STORAGE_UNAVAILABLE = 15


#: What each error code means, for the README table, logs and the soft PLC's report.
ERROR_TEXT: dict[ErrorCode, str] = {
    ErrorCode.NONE: "no error",
    ErrorCode.PLC_HEARTBEAT_LOST: "the PLC heartbeat did not change for the watchdog time",
    ErrorCode.LINK_LOST: "the station lost its Modbus connection to the PLC (client role)",
    ErrorCode.CAMERA_TIMEOUT: "no frame from the camera within its fetch timeout",
    ErrorCode.BAD_FRAME: "the frame was unusable (size, type, unreadable file)",
    ErrorCode.INSPECTION_FAILED: "registration or the inspection engine failed on the part",
    ErrorCode.INSPECTION_TIMEOUT: "no result for the part within the busy timeout",
    ErrorCode.RESULT_ACK_TIMEOUT: "the PLC did not set RESULT_ACK within the ack timeout",
    ErrorCode.UNKNOWN_COMMAND: "command_code holds no known command",
    ErrorCode.UNKNOWN_PRODUCT_CODE: "no recipe carries the product code in command_arg",
    ErrorCode.RECIPE_LOAD_FAILED: "the recipe or its engine could not be loaded",
    ErrorCode.BAD_REGISTER_VALUE: "a PLC register holds a value outside its range",
    ErrorCode.STATION_STOPPING: "the station is shutting down; the part was not inspected",
    ErrorCode.COMMAND_NOT_SUPPORTED: "this station cannot carry out the command",
    ErrorCode.CAMERA_LOST: "the camera is gone (unplugged, powered off); the station reconnects",
    ErrorCode.STORAGE_UNAVAILABLE: "the defect log's journal cannot be written (disk full or "
    "failing): parts are answered ERROR and READY stays low until it can",
}


def error_code_table() -> str:
    """The error codes as the Markdown table in plc/README.md (a test keeps the README in step)."""
    rows = ["| code | name | meaning |", "|---:|---|---|"]
    rows += [f"| {int(code)} | `{code.name}` | {ERROR_TEXT[code]} |" for code in ErrorCode]
    return "\n".join(rows)


def error_name(code: int) -> str:
    """``PLC_HEARTBEAT_LOST`` for 1; the number itself for a code this station does not know."""
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


Kind = Literal["bits", "u16", "u32", "text"]
BlockName = Literal["plc", "station"]


@dataclass(frozen=True)
class FieldSpec:
    """One field of the map: its block, default offset in the block, size and meaning."""

    name: str
    block: BlockName
    offset: int
    kind: Kind
    doc: str

    def words(self, serial_chars: int) -> int:
        if self.kind == "u32":
            return 2
        if self.kind == "text":
            return serial_chars // 2
        return 1


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("control", "plc", 0, "bits", "control bits, see below"),
    FieldSpec("plc_heartbeat", "plc", 1, "u16", "any new value at least once per heartbeat period"),
    FieldSpec("part_sequence", "plc", 2, "u32", "the part's sequence number, set before TRIGGER"),
    FieldSpec("command_code", "plc", 4, "u16", "0 none, 1 LOAD_RECIPE, 2 SET_ONLINE"),
    FieldSpec("command_arg", "plc", 6, "u32", "LOAD_RECIPE: product code; SET_ONLINE: 1/0"),
    FieldSpec("serial", "plc", 8, "text", "serial / lot text, ASCII, NUL-padded"),
    FieldSpec("status", "station", 0, "bits", "status bits, see below"),
    FieldSpec("station_heartbeat", "station", 1, "u16", "incremented every heartbeat period"),
    FieldSpec(
        "inspection_id",
        "station",
        2,
        "u32",
        "new for every accepted trigger; the same number is the inspection's id in the "
        "station's database and log",
    ),
    FieldSpec("part_sequence_echo", "station", 4, "u32", "part_sequence latched at the trigger"),
    FieldSpec("verdict", "station", 6, "u16", "0 none, 1 OK, 2 NG, 3 REVIEW, 4 ERROR"),
    FieldSpec("defect_count", "station", 7, "u16", "defects counted toward the verdict"),
    FieldSpec("top_class", "station", 8, "u16", "class of the top-scoring defect, 0 none"),
    FieldSpec("top_score_permille", "station", 9, "u16", "its score x 1000 (0..1000)"),
    FieldSpec("active_recipe", "station", 10, "u16", "product code of the loaded recipe"),
    FieldSpec("error_code", "station", 11, "u16", "why ERROR / CMD_FAILED is set, 0 none"),
    FieldSpec("cycle_time_us", "station", 12, "u32", "inspection time of the part, microseconds"),
    FieldSpec("recipe_checksum", "station", 14, "u32", "first 32 bits of the recipe content hash"),
)
FIELD_BY_NAME: dict[str, FieldSpec] = {f.name: f for f in FIELDS}


@dataclass(frozen=True)
class PlcInputs:
    """What the PLC block holds (the PLC writes it; the station only reads it)."""

    control: int = 0
    plc_heartbeat: int = 0
    part_sequence: int = 0
    command_code: int = 0
    command_arg: int = 0
    serial: str = ""

    def has(self, bit: ControlBit) -> bool:
        return bool(self.control & bit)

    @property
    def undefined_control_bits(self) -> int:
        return self.control & ~CONTROL_BITS_DEFINED & U16_MAX


@dataclass(frozen=True)
class StationOutputs:
    """What the station block holds (the station writes it; the PLC only reads it)."""

    status: int = 0
    station_heartbeat: int = 0
    inspection_id: int = 0
    part_sequence_echo: int = 0
    verdict: int = 0
    defect_count: int = 0
    top_class: int = 0
    top_score_permille: int = 0
    active_recipe: int = 0
    error_code: int = 0
    cycle_time_us: int = 0
    recipe_checksum: int = 0

    def has(self, bit: StatusBit) -> bool:
        return bool(self.status & bit)
