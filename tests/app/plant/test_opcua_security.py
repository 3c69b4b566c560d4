"""The OPC UA server's security (aoi/app/plant/opcua_security.py) against real asyncua clients.

The server runs as the station runs it (its own thread and loop), with a self-signed certificate
it makes in the data folder; the clients make their own. ``prepare`` records what the method
calls asked for instead of switching a station's recipe (tests/app/plant/test_opcua.py does
that end to end).
"""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua
from asyncua.common.utils import create_nonce
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography.x509.oid import ExtendedKeyUsageOID
from plant_helpers import free_port

from aoi.app.plant.opcua import NAMESPACE, OpcuaServer
from aoi.app.plant.opcua_security import CERT_NAME, KEY_NAME
from aoi.config import OpcuaConfig
from aoi.storage.outbox import OutboxEvent

pytestmark = pytest.mark.integration

CLIENT_URI = "urn:aoi-test:scada"


class Server:
    """An OPC UA server of station ``s1`` whose PrepareRecipe answers with the name it got."""

    def __init__(self, data: Path, **config: Any) -> None:
        self.asked: list[tuple[str, str, str]] = []
        self.url = f"opc.tcp://127.0.0.1:{free_port()}"
        cfg = OpcuaConfig(endpoint=self.url, username="eng", password="s3cret", **config)
        self.server = OpcuaServer(cfg, "s1", self._prepare, data)

    def _prepare(self, kind: str, external_id: str, who: str) -> str:
        self.asked.append((kind, external_id, who))
        return external_id

    def __enter__(self) -> OpcuaServer:
        return self.server.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)


def _result() -> OutboxEvent:
    payload = {
        "inspection_id": 41,
        "serial": "SN41",
        "part_sequence": 41,
        "verdict": "NG",
        "line_verdict": "NG",
        "recipe_name": "board-a",
        "recipe_hash": "a" * 64,
        "model_hash": "m" * 64,
        "cycle_ms": 12.5,
        "defects": [{"class_name": "short", "bbox_xyxy_px": [1, 2, 3, 4], "score": 0.9}],
        "ts": 1_700_000_000.0,
    }
    return OutboxEvent("inspection", "s1/inspection/41", payload)


async def _client(url: str, folder: Path, *, user: bool = True, encrypt: bool = True) -> Client:
    client = Client(url, timeout=4)
    client.application_uri = CLIENT_URI
    if encrypt:
        folder.mkdir(parents=True, exist_ok=True)
        key, cert = folder / "client-key.pem", folder / "client-cert.der"
        await setup_self_signed_certificate(
            key,
            cert,
            CLIENT_URI,
            "localhost",
            [ExtendedKeyUsageOID.CLIENT_AUTH],
            {"commonName": "scada"},
        )
        await client.set_security(
            SecurityPolicyBasic256Sha256,
            certificate=str(cert),
            private_key=str(key),
            mode=ua.MessageSecurityMode.SignAndEncrypt,
        )
    if user:
        client.set_user("eng")
        client.set_password("s3cret")
    return client


async def _recipes(client: Client) -> tuple[Any, int]:
    ns = await client.get_namespace_index(NAMESPACE)
    node = await client.nodes.objects.get_child([f"{ns}:VisionSystem", f"{ns}:RecipeManagement"])
    return node, ns


def test_an_encrypted_user_reads_results_and_prepares_a_recipe(tmp_path):
    server = Server(tmp_path / "data")
    with server as opcua:
        opcua.send(_result())

        async def session() -> tuple[str, str, list[str]]:
            client = await _client(server.url, tmp_path / "client")
            async with client:
                policy = client.security_policy.URI
                recipes, ns = await _recipes(client)
                name = await recipes.call_method(f"{ns}:PrepareRecipe", "board-b")
                last = await client.nodes.objects.get_child(
                    [f"{ns}:VisionSystem", f"{ns}:ResultManagement", f"{ns}:LastResult"]
                )
                endpoints = await client.get_endpoints()
                modes = [e.SecurityMode.name for e in endpoints]
                return name, await last.read_value(), [policy, *modes]

        name, last, (policy, *modes) = asyncio.run(session())
    assert name == "board-b" and server.asked == [("recipe", "board-b", "OPC UA")]
    result = json.loads(last)
    assert result["InspectionId"] == 41 and result["Verdict"] == "NG"
    assert result["Defects"] == [["short", 1, 2, 3, 4, 0.9]]
    assert policy.endswith("#Basic256Sha256")
    assert modes and set(modes) == {"SignAndEncrypt"}  # no unencrypted endpoint offered
    # The self-signed pair was made in the data folder, the key for its owner only.
    key = tmp_path / "data" / "opcua" / KEY_NAME
    assert (tmp_path / "data" / "opcua" / CERT_NAME).stat().st_size > 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


async def _insisting_plain_session(url: str) -> None:
    """A client that goes around its own endpoint check: a session on the channel without
    security that asyncua opens for discovery, the user's password sent in clear."""
    client = Client(url, timeout=4)
    await client.connect_socket()
    try:
        await client.send_hello()
        await client.open_secure_channel()  # SecurityPolicy None: discovery must work
        params = ua.CreateSessionParameters()
        params.ClientNonce = create_nonce(32)
        params.ClientDescription = ua.ApplicationDescription(
            ApplicationUri=CLIENT_URI, ApplicationType=ua.ApplicationType.Client
        )
        params.EndpointUrl = url
        params.SessionName = "plain"
        params.RequestedSessionTimeout = 60_000
        created = await client.uaclient.create_session(params)
        client._server_nonce = created.ServerNonce  # what Client.create_session sets
        await client.activate_session(username="eng", password="s3cret")
        recipes, ns = await _recipes(client)
        await recipes.call_method(f"{ns}:PrepareRecipe", "board-b")
    finally:
        client.disconnect_socket()


def test_an_unencrypted_client_is_refused(tmp_path):
    server = Server(tmp_path / "data")
    with server:

        async def plain() -> None:
            client = await _client(server.url, tmp_path / "c", encrypt=False)
            async with client:
                pass

        with pytest.raises(ua.UaError, match="No matching endpoints"):
            asyncio.run(plain())  # no endpoint without security is offered
        with pytest.raises(ua.UaStatusCodeError, match="BadUserAccessDenied"):
            asyncio.run(_insisting_plain_session(server.url))  # and no session without it
    assert server.asked == []


def test_anonymous_sessions_only_where_allowed_and_then_read_only(tmp_path):
    async def anonymous(url: str) -> str:
        client = await _client(url, tmp_path / "client", user=False)
        async with client:
            recipes, ns = await _recipes(client)
            name = await (await recipes.get_child(f"{ns}:ActiveRecipe")).read_value()
            with pytest.raises(ua.UaStatusCodeError, match="BadUserAccessDenied"):
                await recipes.call_method(f"{ns}:PrepareRecipe", "board-b")
            return name

    refused = Server(tmp_path / "a")
    with refused, pytest.raises(ua.UaStatusCodeError, match="BadIdentityTokenRejected"):
        asyncio.run(anonymous(refused.url))  # no anonymous session at all
    allowed = Server(tmp_path / "b", allow_anonymous=True)
    with allowed:
        assert asyncio.run(anonymous(allowed.url)) == ""  # reads, encrypted
    assert refused.asked == allowed.asked == []
