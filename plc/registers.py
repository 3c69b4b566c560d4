"""The register map of the PLC link: where the fields live, and the words they encode to.

Holding registers only, 0-based addresses. The fields, bits and codes are :mod:`plc.protocol`'s;
this module places the two blocks (and single fields within their block) on registers, as the
station config's ``[plc.map]`` asks (:meth:`RegisterMap.build` checks the result), and encodes
the blocks: 32-bit values take two registers, high word first (big-endian word order); text takes
two ASCII characters per register, first character in the high byte, NUL-padded.

``plc/README.md`` carries the same table for PLC programmers (:func:`markdown_table`); a test
keeps the two in step.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from plc.errors import PlcConfigError
from plc.protocol import (
    CONTROL_BITS_DEFINED,
    ERROR_TEXT,
    FIELD_BY_NAME,
    FIELDS,
    MAX_BLOCK_WORDS,
    U16_MAX,
    U32_MAX,
    BlockName,
    CommandCode,
    ControlBit,
    ErrorCode,
    FieldSpec,
    Kind,
    PlcInputs,
    StationOutputs,
    StatusBit,
    error_name,
)

#: The protocol's names stay importable from here, where the map used to define them all.
__all__ = [
    "CONTROL_BITS_DEFINED",
    "DEFAULT_MAP",
    "ERROR_TEXT",
    "FIELDS",
    "FIELD_BY_NAME",
    "MAX_BLOCK_WORDS",
    "U16_MAX",
    "U32_MAX",
    "BlockName",
    "CommandCode",
    "ControlBit",
    "ErrorCode",
    "FieldSpec",
    "Kind",
    "PlcInputs",
    "RegisterMap",
    "Span",
    "StationOutputs",
    "StatusBit",
    "decode_plc",
    "decode_station",
    "encode_plc",
    "encode_station",
    "error_name",
    "markdown_table",
    "text_words",
    "u32_words",
    "words_text",
    "words_u32",
]

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
