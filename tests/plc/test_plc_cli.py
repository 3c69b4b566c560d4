"""`aoi bench/run --plc ...` and `aoi plc-sim` end to end, through aoi.cli.main."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from test_plc_link import inspection

from aoi.app.plc import plc_spec_for
from aoi.app.recipes import recipe_for_product_code
from aoi.cli import build_parser, main, options_for
from aoi.config import PlcConfig, load_station_config
from aoi.errors import RecipeError
from plc.client import RegisterClient
from plc.errors import UnknownProductCode
from plc.events import ActiveRecipe
from plc.link import StationLink
from plc.session import open_soft_plc
from plc.softplc import SimTiming, SoftPlcLogic

RecipeFactory = Callable[..., Path]


def _last_json(out: str) -> dict[str, object]:
    return json.loads(out.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _second_recipe(first: Path, name: str, product_code: int) -> Path:
    """A copy of ``first`` under another name and product code (same model and template)."""
    text = first.read_text().replace('name = "test-board"', f'name = "{name}"')
    path = first.with_name(f"{name}.toml")
    path.write_text(text.replace("product_code = 7", f"product_code = {product_code}"))
    return path


@pytest.mark.integration  # the soft PLC over Modbus/TCP on 127.0.0.1
@pytest.mark.parametrize(("role", "cycles"), [("server", 50), ("client", 20)])
def test_bench_with_the_soft_plc_answers_every_part(
    make_recipe: RecipeFactory, capsys: pytest.CaptureFixture[str], role: str, cycles: int
) -> None:
    recipe = make_recipe()
    args = ["bench", "--recipe", str(recipe), "--plc", "sim", "--plc-role", role]
    assert main([*args, "--cycles", str(cycles), "--json"]) == 0
    out = capsys.readouterr().out
    summary = _last_json(out)
    assert summary["cycles"] == cycles
    plc = summary["plc"]
    assert isinstance(plc, dict)
    keys = {"parts", "acked", "missed", "mismatched", "timeouts", "write_ms", "line_verdicts"}
    assert set(plc) == keys
    assert plc["parts"] == plc["acked"] == cycles
    # What the line received: the inspections' own verdicts, no link fault in between.
    assert plc["line_verdicts"] == {k: n for k, n in summary["verdicts"].items() if n}
    assert plc["missed"] == plc["mismatched"] == plc["timeouts"] == 0
    w = plc["write_ms"]
    assert 0 < w["p50"] <= w["p99"] <= w["max"]
    assert "plc      parts" in out


def test_bench_without_a_plc_has_no_plc_block(
    make_recipe: RecipeFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "--recipe", str(make_recipe()), "--cycles", "2", "--json"]) == 0
    assert "plc" not in _last_json(capsys.readouterr().out)


@pytest.mark.integration  # the soft PLC over Modbus/TCP on 127.0.0.1
def test_run_switches_recipe_when_the_plc_asks(
    make_recipe: RecipeFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    first = make_recipe()
    _second_recipe(first, "test-board-b", 8)
    port = _free_port()
    settings = PlcConfig(heartbeat_period_ms=100)
    logic = SoftPlcLogic(6, SimTiming(heartbeat_period_s=0.1), product_code=8)
    with open_soft_plc("client", "127.0.0.1", port, settings, logic, scan_s=0.002) as sim:
        args = ["run", "--recipe", str(first), "--plc", f"tcp://127.0.0.1:{port}"]
        assert main([*args, "--cycles", "6", "--json"]) == 0
        assert sim.wait_done(30.0)
    captured = capsys.readouterr()
    summary = _last_json(captured.out)
    assert summary["recipe"] == "test-board-b", "the parts after the change used the new recipe"
    assert summary["cycles"] == 6
    assert logic.report.recipe_change == "product code 8 loaded"
    # Every part reached the PLC with its verdict and the PLC completed every handshake: the
    # station stays on the line at shutdown until the PLC has let go of its last RESULT_ACK.
    assert sum(logic.report.verdicts.values()) == 6
    r = logic.report
    assert (r.acked, r.missed, r.mismatched, r.timeouts) == (6, 0, 0, 0), r.problems
    plc = summary["plc"]
    assert isinstance(plc, dict)
    assert (plc["parts"], plc["acked"], plc["timeouts"]) == (6, 6, 0)
    assert "loading test-board-b (product code 8)" in captured.err


def test_recipe_for_product_code(make_recipe: RecipeFactory) -> None:
    first = make_recipe()
    second = _second_recipe(first, "test-board-b", 8)
    assert recipe_for_product_code(8, first.parent) == second
    with pytest.raises(UnknownProductCode, match=r"product_code = 4242; found \{7: 'test-board"):
        recipe_for_product_code(4242, first.parent)
    _second_recipe(first, "test-board-c", 8)
    with pytest.raises(RecipeError, match=r"product code 8 is claimed by \['test-board-b.toml'"):
        recipe_for_product_code(8, first.parent)


@pytest.mark.integration  # `aoi plc-sim` serving Modbus/TCP on 127.0.0.1
def test_plc_sim_command_reports_and_sets_its_exit_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`aoi plc-sim --role server` against a station link in the client role."""
    port = _free_port()
    settings = PlcConfig(role="client", port=port, heartbeat_period_ms=100)
    stop = threading.Event()

    def station() -> None:
        client = RegisterClient("127.0.0.1", port, timeout_s=0.5)
        with client, StationLink(client, settings) as link:
            link.set_station_ready(ActiveRecipe(7, 0, "test"))
            while not stop.is_set():
                trigger = link.wait_trigger(0.05)
                if trigger is not None:
                    link.publish(inspection(trigger))

    thread = threading.Thread(target=station, name="station")
    thread.start()
    try:
        args = ["plc-sim", "--role", "server", "--port", str(port), "--parts", "5"]
        assert main([*args, "--heartbeat-ms", "100", "--scan-ms", "2", "--json"]) == 0
    finally:
        stop.set()
        thread.join()
    report = _last_json(capsys.readouterr().out)
    assert (report["parts"], report["acked"], report["verdicts"]) == (5, 5, {"OK": 5})


@pytest.mark.parametrize(
    ("command", "flag", "toml", "expected"),
    [
        ("run", None, None, "sim"),
        ("bench", None, None, "none"),
        ("run", "none", '[plc]\nhost = "10.1.2.3"\n', "none"),
        ("run", None, '[plc]\nhost = "10.1.2.3"\nport = 5020\n', "tcp://10.1.2.3:5020"),
        ("run", None, '[plc]\nhost = "fd00::7"\n', "tcp://[fd00::7]:502"),
        ("bench", None, '[plc]\nhost = "10.1.2.3"\n', "none"),
        ("bench", "sim", '[plc]\nhost = "10.1.2.3"\n', "sim"),
        ("run", None, "[camera]\nfetch_timeout_s = 1.0\n", "sim"),
    ],
)
def test_plc_spec_from_flag_station_config_or_default(
    tmp_path: Path, command: str, flag: str | None, toml: str | None, expected: str
) -> None:
    path = None
    if toml is not None:
        path = tmp_path / "station.toml"
        path.write_text(toml)
    argv = [command] + (["--plc", flag] if flag else [])
    args = build_parser().parse_args(argv)
    assert plc_spec_for(options_for(args), load_station_config(path)) == expected


def test_plc_sim_refuses_a_bad_register_map_naming_the_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "station.toml"
    path.write_text("[plc.map]\noffsets = { verdict = 7 }\n")
    args = ["plc-sim", "--station", str(path), "--port", str(_free_port()), "--parts", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"error: {path}: [plc].map: station field defect_count at 39..39 overlaps verdict" in err
