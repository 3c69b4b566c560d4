"""The register map of the PLC link: fields, bits, codes, and the words they encode to.

Holding registers only, 0-based addresses. Two blocks: the PLC writes the *PLC block* (control
bits, heartbeat, part sequence, command, serial text) and the station writes the *station block*
(status bits, heartbeat, inspection id, result, error code). 32-bit values take two registers,
high word first (big-endian word order); text takes two ASCII characters per register, first
character in the high byte, NUL-padded. Both blocks can be moved, and single fields moved within
their block, by the station config (``[plc.map]``); :meth:`RegisterMap.build` checks the result.

``plc/README.md`` carries the same table for PLC programmers; a test keeps the two in step.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from plc.errors import PlcConfigError

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
}


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

DEFAULT_PLC_BASE = 0
DEFAULT_STATION_BASE = 32
DEFAULT_SERIAL_CHARS = 32


@dataclass(frozen=True)
class Span:
    """A contiguous range of registers: ``start`` .. ``start + count - 1``."""

    start: int
    count: int

    @property
    def stop(self) -> int:
        return self.start + self.count

    def __str__(self) -> str:
        return f"{self.start}..{self.stop - 1}"


@dataclass(frozen=True)
class RegisterMap:
    """Where every field lives; build it with :meth:`build`, which checks the layout."""

    plc_base: int = DEFAULT_PLC_BASE
    station_base: int = DEFAULT_STATION_BASE
    serial_chars: int = DEFAULT_SERIAL_CHARS
    addresses: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        plc_base: int = DEFAULT_PLC_BASE,
        station_base: int = DEFAULT_STATION_BASE,
        serial_chars: int = DEFAULT_SERIAL_CHARS,
        offsets: Mapping[str, int] | None = None,
        source: str = "plc.map",
    ) -> RegisterMap:
        """The map with the blocks at the given bases and ``offsets`` overriding field offsets."""
        offsets = dict(offsets or {})
        unknown = sorted(set(offsets) - set(FIELD_BY_NAME))
        if unknown:
            msg = f"{source}.offsets: unknown field(s) {unknown}; known: {sorted(FIELD_BY_NAME)}"
            raise PlcConfigError(msg)
        if serial_chars < 2 or serial_chars % 2 or serial_chars > 80:
            msg = f"{source}.serial_chars must be even and in 2..80, got {serial_chars}"
            raise PlcConfigError(msg)
        for name, base in (("plc_base", plc_base), ("station_base", station_base)):
            if not 0 <= base <= U16_MAX:
                msg = f"{source}.{name} must lie in 0..65535, got {base}"
                raise PlcConfigError(msg)
        addresses: dict[str, int] = {}
        for spec in FIELDS:
            offset = offsets.get(spec.name, spec.offset)
            if offset < 0:
                msg = f"{source}.offsets.{spec.name} must be >= 0, got {offset}"
                raise PlcConfigError(msg)
            base = plc_base if spec.block == "plc" else station_base
            addresses[spec.name] = base + offset
        layout = cls(plc_base, station_base, serial_chars, addresses)
        layout._check(source)
        return layout

    def words(self, name: str) -> int:
        return FIELD_BY_NAME[name].words(self.serial_chars)

    def field_span(self, name: str) -> Span:
        return Span(self.addresses[name], self.words(name))

    def block_span(self, block: BlockName) -> Span:
        spans = [self.field_span(f.name) for f in FIELDS if f.block == block]
        start = min(s.start for s in spans)
        return Span(start, max(s.stop for s in spans) - start)

    @property
    def plc_block(self) -> Span:
        return self.block_span("plc")

    @property
    def station_block(self) -> Span:
        return self.block_span("station")

    @property
    def whole(self) -> Span:
        """The smallest span holding both blocks (what a station acting as server serves)."""
        a, b = self.plc_block, self.station_block
        start = min(a.start, b.start)
        return Span(start, max(a.stop, b.stop) - start)

    def _check(self, source: str) -> None:
        for block in ("plc", "station"):
            names = sorted(
                (f.name for f in FIELDS if f.block == block), key=lambda n: self.addresses[n]
            )
            for a, b in itertools.pairwise(names):
                sa, sb = self.field_span(a), self.field_span(b)
                if sb.start < sa.stop:
                    msg = (
                        f"{source}: {block} field {b} at {sb} overlaps {a} at {sa}; "
                        f"each field needs its own registers"
                    )
                    raise PlcConfigError(msg)
            span = self.block_span(block)
            if span.count > MAX_BLOCK_WORDS:
                msg = (
                    f"{source}: the {block} block spans {span} ({span.count} registers); it must "
                    f"fit one Modbus request of at most {MAX_BLOCK_WORDS} registers"
                )
                raise PlcConfigError(msg)
            if span.stop - 1 > U16_MAX:
                msg = f"{source}: the {block} block {span} runs past register 65535"
                raise PlcConfigError(msg)
        a, b = self.plc_block, self.station_block
        if a.start < b.stop and b.start < a.stop:
            msg = (
                f"{source}: the PLC block {a} and the station block {b} overlap; "
                f"move plc_base or station_base"
            )
            raise PlcConfigError(msg)


DEFAULT_MAP = RegisterMap.build()


# -- values of the two blocks ---------------------------------------------------------------


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


# -- encoding ---------------------------------------------------------------------------------


def u32_words(value: int) -> list[int]:
    """A 32-bit unsigned value as two registers, high word first."""
    if not 0 <= value <= U32_MAX:
        msg = f"a 32-bit register pair holds 0..{U32_MAX}, got {value}"
        raise ValueError(msg)
    return [(value >> 16) & U16_MAX, value & U16_MAX]


def words_u32(words: Sequence[int]) -> int:
    return ((words[0] & U16_MAX) << 16) | (words[1] & U16_MAX)


def text_words(text: str, n_words: int) -> list[int]:
    """ASCII text as registers (two characters each, first in the high byte), NUL-padded."""
    data = text.encode("ascii", errors="replace")[: n_words * 2].ljust(n_words * 2, b"\0")
    return [(data[i] << 8) | data[i + 1] for i in range(0, len(data), 2)]


def words_text(words: Sequence[int]) -> str:
    """Text from registers, up to the first NUL; bytes outside printable ASCII become '?'."""
    data = bytearray()
    for w in words:
        data += bytes(((w >> 8) & 0xFF, w & 0xFF))
    data = data.split(b"\0", 1)[0]
    return "".join(chr(b) if 0x20 <= b < 0x7F else "?" for b in data)


def _encode(layout: RegisterMap, block: BlockName, values: object) -> list[int]:
    span = layout.block_span(block)
    out = [0] * span.count
    for spec in FIELDS:
        if spec.block != block:
            continue
        value = getattr(values, spec.name)
        if spec.kind == "u32":
            words = u32_words(value)
        elif spec.kind == "text":
            words = text_words(value, layout.words(spec.name))
        else:
            if not 0 <= value <= U16_MAX:
                msg = f"register {spec.name} holds 0..65535, got {value}"
                raise ValueError(msg)
            words = [value]
        at = layout.addresses[spec.name] - span.start
        out[at : at + len(words)] = words
    return out


def _decode(layout: RegisterMap, block: BlockName, words: Sequence[int]) -> dict[str, object]:
    span = layout.block_span(block)
    if len(words) != span.count:
        msg = f"the {block} block {span} needs {span.count} registers, got {len(words)}"
        raise ValueError(msg)
    values: dict[str, object] = {}
    for spec in FIELDS:
        if spec.block != block:
            continue
        at = layout.addresses[spec.name] - span.start
        chunk = words[at : at + layout.words(spec.name)]
        if spec.kind == "u32":
            values[spec.name] = words_u32(chunk)
        elif spec.kind == "text":
            values[spec.name] = words_text(chunk)
        else:
            values[spec.name] = chunk[0] & U16_MAX
    return values


def encode_plc(layout: RegisterMap, inputs: PlcInputs) -> list[int]:
    return _encode(layout, "plc", inputs)


def decode_plc(layout: RegisterMap, words: Sequence[int]) -> PlcInputs:
    return PlcInputs(**_decode(layout, "plc", words))  # type: ignore[arg-type]


def encode_station(layout: RegisterMap, outputs: StationOutputs) -> list[int]:
    return _encode(layout, "station", outputs)


def decode_station(layout: RegisterMap, words: Sequence[int]) -> StationOutputs:
    return StationOutputs(**_decode(layout, "station", words))  # type: ignore[arg-type]


def describe_bits(value: int, bits: type[enum.IntFlag]) -> str:
    """``READY|BUSY`` for logs and messages."""
    names = [b.name for b in bits if value & b and b.name]
    return "|".join(names) or "0"


def markdown_table(layout: RegisterMap = DEFAULT_MAP) -> str:
    """The map as the Markdown table in plc/README.md (a test keeps the README in step)."""
    rows = [
        "| register | field | type | written by | meaning |",
        "|---:|---|---|---|---|",
    ]
    for spec in sorted(FIELDS, key=lambda f: layout.addresses[f.name]):
        span = layout.field_span(spec.name)
        where = str(span.start) if span.count == 1 else f"{span.start}..{span.stop - 1}"
        kind = {
            "bits": "bits",
            "u16": "UINT",
            "u32": "UDINT (high word first)",
            "text": f"STRING[{layout.serial_chars}]",
        }[spec.kind]
        writer = "PLC" if spec.block == "plc" else "station"
        rows.append(f"| {where} | `{spec.name}` | {kind} | {writer} | {spec.doc} |")
    return "\n".join(rows)
