"""The OPC UA server (aoi/app/plant/opcua.py): a real station, an asyncua client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from asyncua import Client, ua
from plant_helpers import free_port, wait_for

from aoi.app.station import Station, StationOptions

pytestmark = pytest.mark.integration

NS = "urn:aoi-station:machinevision"


def _station(make_recipe: Callable[..., Path], tmp_path: Path, **opcua: object) -> Station:
    first = make_recipe("board-a", registration="none")
    second = make_recipe("board-b", registration="none")
    second.write_text(second.read_text().replace("product_code = 7", "product_code = 8"))
    port = free_port()
    lines = [f'endpoint = "opc.tcp://127.0.0.1:{port}"', 'username = "eng"', 'password = "s3cret"']
    # The plain channel and anonymous readers of a trusted network (test_opcua_security.py
    # checks the encrypted one).
    opcua = {"security": "none", "allow_anonymous": True, **opcua}
    lines += [f"{k} = {json.dumps(v)}" for k, v in opcua.items()]
    toml = tmp_path / "station.toml"
    toml.write_text('station_id = "aoi-9"\n[opcua]\n' + "\n".join(lines) + "\n")
    options = StationOptions(
        recipe=str(first),
        station=str(toml),
        data_dir=tmp_path / "data",
        plc="sim",
        threads=1,
        sim_parts=3,
    )
    return Station(options)


async def _node(client: Client, *path: str):
    return await client.nodes.objects.get_child([f"{await _ns(client)}:{p}" for p in path])


async def _ns(client: Client) -> int:
    return await client.get_namespace_index(NS)


def test_results_state_and_recipe_switching_with_user_and_read_only_anonymous(
    make_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    with _station(make_recipe, tmp_path) as station:
        url = station.config.opcua.endpoint

        async def anonymous() -> tuple[str, str]:
            async with Client(url) as client:
                state = await (
                    await _node(client, "VisionSystem", "VisionStateMachine", "CurrentState")
                ).read_value()
                recipes = await _node(client, "VisionSystem", "RecipeManagement")
                with pytest.raises(ua.UaStatusCodeError) as refused:
                    await recipes.call_method(f"{await _ns(client)}:PrepareProduct", "8")
                return state, type(refused.value).__name__

        async def engineer() -> str:
            client = Client(url)
            client.set_user("eng")
            client.set_password("s3cret")
            async with client:
                recipes = await _node(client, "VisionSystem", "RecipeManagement")
                return await recipes.call_method(f"{await _ns(client)}:PrepareProduct", "8")

        async def results() -> tuple[list[dict], str]:
            async with Client(url) as client:
                last = await _node(client, "VisionSystem", "ResultManagement", "LastResults")
                machine = await _node(client, "VisionSystem", "VisionStateMachine", "CurrentState")
                return json.loads(await last.read_value()), await machine.read_value()

        wait_for(lambda: station.active_recipe is not None, what="a rig")
        state, refused = asyncio.run(anonymous())
        assert state in ("Ready", "Initialized")  # the state watch may not have run yet
        assert "AccessDenied" in refused or "UserAccessDenied" in refused
        assert station.active_recipe.name == "board-a"  # the anonymous call changed nothing
        assert asyncio.run(engineer()) == "board-b"
        assert station.active_recipe.name == "board-b"
        assert station.start("test", cycles=3)
        assert station.wait(60.0)
        wait_for(lambda: len(asyncio.run(results())[0]) == 3, what="three results")
        wait_for(lambda: asyncio.run(results())[1] == "Ready", what="Ready after the run")
        got, state = asyncio.run(results())
    assert [r["InspectionId"] for r in got] == [3, 2, 1]  # newest first
    assert {r["Recipe"] for r in got} == {"board-b"}
    assert all(r["LineVerdict"] == r["Verdict"] for r in got)
    assert state == "Ready"


def test_a_client_not_on_the_allow_list_is_refused(
    make_recipe: Callable[..., Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with _station(make_recipe, tmp_path, allowed_clients=["10.77.0.0/16"]) as station:

        async def read() -> None:
            client = Client(station.config.opcua.endpoint, timeout=2)
            async with client:
                await client.nodes.objects.read_browse_name()

        with pytest.raises(ua.UaStatusCodeError, match="BadUserAccessDenied"):
            asyncio.run(read())
        # The server runs in the publishers' process, whose log records reach this one after
        # the client has its answer: wait for the line while the station is still up.
        refused = "refused 127.0.0.1 (not in [opcua] allowed_clients)"
        wait_for(lambda: refused in caplog.text, what="the station's refusal in its log")
