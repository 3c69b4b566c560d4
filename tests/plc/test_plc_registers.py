"""The register map: encoding, layout checks, the README table, and the [plc] config."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from aoi.config import PlcConfig, PlcMapConfig, load_station_config
from aoi.errors import StationConfigError
from plc.config import handshake_timing, register_map
from plc.errors import PlcConfigError
from plc.protocol import error_code_table
from plc.registers import (
    DEFAULT_MAP,
    PlcInputs,
    RegisterMap,
    StationOutputs,
    decode_plc,
    decode_station,
    encode_plc,
    encode_station,
    markdown_table,
    text_words,
    u32_words,
    words_text,
    words_u32,
)
from plc.session import PlcSpec, open_plc, parse_plc_spec

REPO = Path(__file__).resolve().parents[2]
DoesNotRaise = contextlib.nullcontext


def test_default_map_blocks() -> None:
    assert (DEFAULT_MAP.plc_block.start, DEFAULT_MAP.plc_block.count) == (0, 24)
    assert (DEFAULT_MAP.station_block.start, DEFAULT_MAP.station_block.count) == (32, 16)
    assert DEFAULT_MAP.addresses["verdict"] == 38


@pytest.mark.parametrize("value", [0, 1, 0xFFFF, 0x10000, 123_456_789, 0xFFFF_FFFF])
def test_u32_is_high_word_first(value: int) -> None:
    words = u32_words(value)
    assert words == [value >> 16, value & 0xFFFF]
    assert words_u32(words) == value


def test_u32_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"0\.\.4294967295, got 4294967296"):
        u32_words(1 << 32)


def test_text_two_chars_per_register_first_in_high_byte() -> None:
    assert text_words("AB-1", 3) == [0x4142, 0x2D31, 0]
    assert words_text([0x4142, 0x2D31, 0, 0x4141]) == "AB-1", "stops at the first NUL"
    assert words_text([0x41FF, 0x0742]) == "A??B", "non-printable bytes show as ?"


def test_blocks_round_trip() -> None:
    inputs = PlcInputs(0x13, 7, 70_000, 1, 202, "LOT-42/7")
    assert decode_plc(DEFAULT_MAP, encode_plc(DEFAULT_MAP, inputs)) == inputs
    outputs = StationOutputs(0x20F, 9, 3, 70_000, 2, 4, 5, 987, 101, 0, 34_567, 0xDEADBEEF)
    words = encode_station(DEFAULT_MAP, outputs)
    assert len(words) == 16
    assert words[6] == 2, "verdict at 32 + 6"
    assert decode_station(DEFAULT_MAP, words) == outputs


def test_moved_blocks_and_fields() -> None:
    layout = RegisterMap.build(plc_base=100, station_base=200, offsets={"verdict": 20})
    assert layout.addresses["control"] == 100
    assert layout.addresses["verdict"] == 220
    assert (layout.station_block.start, layout.station_block.count) == (200, 21)
    outputs = StationOutputs(verdict=1, inspection_id=5)
    assert decode_station(layout, encode_station(layout, outputs)) == outputs


@pytest.mark.parametrize(
    ("kwargs", "expectation"),
    [
        ({}, DoesNotRaise()),
        ({"plc_base": 1000, "station_base": 0}, DoesNotRaise()),
        ({"station_base": 10}, pytest.raises(PlcConfigError, match=r"PLC block 0\.\.23 and")),
        (
            {"offsets": {"verdict": 7}},
            pytest.raises(PlcConfigError, match=r"defect_count at 39\.\.39 overlaps verdict"),
        ),
        ({"offsets": {"verdic": 7}}, pytest.raises(PlcConfigError, match=r"unknown field")),
        ({"offsets": {"verdict": 200}}, pytest.raises(PlcConfigError, match="one Modbus request")),
        ({"serial_chars": 7}, pytest.raises(PlcConfigError, match="serial_chars must be even")),
        ({"station_base": 65530}, pytest.raises(PlcConfigError, match="past register 65535")),
    ],
)
def test_map_checks(kwargs: dict[str, Any], expectation: Any) -> None:
    with expectation:
        RegisterMap.build(**kwargs, source="station.toml [plc.map]")


def test_readme_holds_the_map_table() -> None:
    readme = (REPO / "plc" / "README.md").read_text(encoding="utf-8")
    assert markdown_table(DEFAULT_MAP) in readme
    assert error_code_table() in readme  # every error code, CAMERA_LOST included


def test_station_config_plc_section(tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    path.write_text(
        '[plc]\nrole = "client"\nhost = "10.0.0.5"\nport = 5020\nheartbeat_period_ms = 100\n'
        "[plc.map]\nstation_base = 100\noffsets = { verdict = 20 }\n"
    )
    config = load_station_config(path).plc
    assert (config.role, config.host, config.port) == ("client", "10.0.0.5", 5020)
    assert handshake_timing(config).watchdog_s == pytest.approx(0.3)
    assert register_map(config).addresses["verdict"] == 120
    assert register_map(config).station_block.start == 100


def test_station_config_plc_errors_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    path.write_text('[plc]\nrole = "master"\n')
    with pytest.raises(StationConfigError, match=r"plc\.role"):
        load_station_config(path)
    path.write_text("[plc.map]\noffsets = { verdict = 7 }\n")
    config = load_station_config(path).plc
    with pytest.raises(PlcConfigError, match=r"station\.toml: \[plc\]\.map: station field"):
        register_map(config, source="station.toml: [plc]")
    path.write_text("[plc.map]\noffsets = { verdic = 7 }\n")
    config = load_station_config(path).plc
    with pytest.raises(PlcConfigError, match=r"station\.toml: \[plc\]\.map\.offsets: unknown"):
        register_map(config, source="station.toml: [plc]")


def test_a_bad_map_is_refused_even_without_a_plc() -> None:
    """``--plc none`` opens nothing, but a station config with a broken map is still wrong."""
    config = PlcConfig(map=PlcMapConfig(station_base=10))
    with (
        pytest.raises(PlcConfigError, match=r"line\.toml: \[plc\]\.map: the PLC block 0\.\.23"),
        open_plc("none", config, source="line.toml: [plc]"),
    ):
        pass


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("none", PlcSpec("none")),
        ("sim", PlcSpec("sim")),
        ("tcp://192.168.0.10:502", PlcSpec("tcp", "192.168.0.10", 502)),
        ("tcp://plc-line3.local:5020", PlcSpec("tcp", "plc-line3.local", 5020)),
        ("tcp://[::1]:5020", PlcSpec("tcp", "::1", 5020)),
    ],
)
def test_plc_specs(spec: str, expected: PlcSpec) -> None:
    assert parse_plc_spec(spec) == expected


@pytest.mark.parametrize("spec", ["tcp://host", "udp://h:1", "tcp://h:0", "tcp://h:70000", ""])
def test_bad_plc_specs(spec: str) -> None:
    with pytest.raises(PlcConfigError, match=r"--plc must be none \| sim \| tcp://HOST:PORT"):
        parse_plc_spec(spec)
