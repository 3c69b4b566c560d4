"""The OPC UA server: a subset of OPC 40100 (Machine Vision) over asyncua.

Under ``Objects/VisionSystem`` (namespace ``urn:aoi-station:machinevision``):

- ``VisionStateMachine/CurrentState``: ``Preoperational`` (a recipe is loading),
  ``Ready`` (stopped, recipe prepared), ``Continuous`` (inspecting), ``Error`` (no recipe
  loads); ``Initialized`` before the first state is known. ``SingleExecution`` is not used: the
  station inspects continuously, part by part, while it runs.
- ``RecipeManagement``: ``ActiveRecipe``/``ActiveRecipeHash``, and the methods
  ``PrepareRecipe(ExternalId)`` (a recipe by name) and ``PrepareProduct(ExternalId)`` (a product
  code, as the PLC's LOAD_RECIPE gives it): both activate through the station's own recipe
  path (:meth:`aoi.app.station.Station.activate`, audited as ``OPC UA:<user>``) and need the
  station stopped, as an engineer's activation does.
- ``ResultManagement``: ``LastResult`` and ``LastResults`` (JSON of the last ``results_kept``
  inspections, newest first, with the verdict the PLC got), fed by the server's own outbox.

Access, like the PLC link's: a client whose address is not in ``[opcua] allowed_clients`` is
disconnected at once; writes and method calls need the ``[opcua]`` user and password (no user
configured: no one may call); anonymous sessions, where ``allow_anonymous`` offers them, read
and browse only. The channel is Basic256Sha256 SignAndEncrypt with the station's certificate
unless ``security = "none"`` (aoi/app/plant/opcua_security.py; docs/plant.md).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from asyncua import Server, ua, uamethod
from asyncua.crypto.permission_rules import USER_TYPES, PermissionRuleset, User, UserRole

from aoi.app.plant.opcua_security import application_uri, secure
from aoi.config import OpcuaConfig
from aoi.errors import AoiError
from aoi.storage.db import default_data_dir
from aoi.storage.outbox import OutboxEvent, PublishError
from plc.access import ServerAccess

log = logging.getLogger(__name__)

NAMESPACE = "urn:aoi-station:machinevision"
STATES = {
    "loading": "Preoperational",
    "stopped": "Ready",
    "running": "Continuous",
    "error": "Error",
}
#: What a signed-in session may do (asyncua's users' requests), and what an anonymous one may not.
_USER = {ua.NodeId(i) for i in USER_TYPES}
_WRITES = {
    ua.NodeId(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary),
    ua.NodeId(ua.ObjectIds.CallRequest_Encoding_DefaultBinary),
}

#: Activates a recipe by name or product code (``kind`` ``recipe``/``product``); returns its
#: name, raises :class:`AoiError` when it cannot.
Prepare = Callable[[str, str, str], str]


class ReadOnlyAnonymous(PermissionRuleset):
    """Signed-in users may do what asyncua's users may; anonymous ones only read and browse."""

    def check_validity(self, user: User, action_type_id: Any, body: Any) -> bool:  # noqa: ARG002
        if action_type_id not in _USER:
            return False
        return user.role is not UserRole.Anonymous or action_type_id not in _WRITES


class _Users:
    """The ``[opcua]`` user, or an anonymous reader; a wrong password is refused, and so is
    any session on an unencrypted channel when the server is to encrypt."""

    def __init__(self, config: OpcuaConfig) -> None:
        self.config = config

    def get_user(  # asyncua's signature
        self,
        iserver: Any,  # noqa: ARG002
        username: str | None = None,
        password: str | None = None,
        certificate: bytes | None = None,
        **_: Any,
    ) -> User | None:
        if self.config.security != "none" and not certificate:
            # asyncua opens a channel without security for discovery (GetEndpoints) even when
            # no such endpoint is offered, and lets a session be made on it, where no
            # permission rules apply. The channel's peer certificate is there only on a signed,
            # encrypted channel: without it, no session.
            log.warning("OPC UA: refused a session on an unencrypted channel")
            return None
        if not username:
            return User(role=UserRole.Anonymous) if self.config.allow_anonymous else None
        ok = bool(self.config.username) and hmac.compare_digest(
            f"{username}\0{password or ''}", f"{self.config.username}\0{self.config.password}"
        )
        return User(role=UserRole.User, name=username) if ok else None


class OpcuaServer:
    """The OPC UA server on its own thread and event loop; also the sink of its outbox."""

    name = "opcua"

    def __init__(
        self,
        config: OpcuaConfig,
        station_id: str,
        prepare: Prepare,
        data_dir: Path | None = None,
    ) -> None:
        self.config = config
        #: Where a self-signed certificate is made and kept (``<data folder>/opcua/``).
        self.data_dir = data_dir or default_data_dir()
        self.station_id = station_id
        self.prepare = prepare
        self.access = ServerAccess.from_config_addresses(config.allowed_clients)
        self.results: deque[dict[str, Any]] = deque(maxlen=config.results_kept)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="aoi-opcua", daemon=True)
        self._server: Server | None = None
        self._nodes: dict[str, Any] = {}

    # -- life cycle (the caller's thread) -----------------------------------------------------

    def __enter__(self) -> OpcuaServer:
        self._thread.start()
        try:
            self._call(self._start(), timeout=30.0)
        except BaseException:
            self._stop_loop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._call(self._server.stop(), timeout=10.0)
        self._call(self.loop.shutdown_default_executor(), timeout=10.0)  # PrepareRecipe's thread
        self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)

    def _call(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    # -- the outbox's sink and the state listener --------------------------------------------

    def connect(self) -> None:
        if self._server is None:
            msg = "OPC UA server is not running"
            raise PublishError(msg)

    def send(self, event: OutboxEvent) -> None:
        if event.kind != "inspection":
            return  # the active recipe comes with the state
        p = event.payload
        result = {
            "ResultId": event.message_id,
            "InspectionId": p["inspection_id"],
            "Serial": p["serial"],
            "PartSequence": p["part_sequence"],
            "Verdict": p["verdict"],
            "LineVerdict": p["line_verdict"],
            "Recipe": p["recipe_name"],
            "RecipeHash": p["recipe_hash"],
            "ModelHash": p["model_hash"],
            "CycleMs": p["cycle_ms"],
            "Defects": [[d["class_name"], *d["bbox_xyxy_px"], d["score"]] for d in p["defects"]],
            "Timestamp": p["ts"],
        }
        self.results.appendleft(result)
        latest = json.dumps(result)
        recent = json.dumps(list(self.results))
        try:
            self._call(self._write({"LastResult": latest, "LastResults": recent}), timeout=5.0)
        except FutureTimeout as err:
            msg = "OPC UA server did not take the result"
            raise PublishError(msg) from err

    def publish_state(self, state: dict[str, Any]) -> None:
        values = {
            "CurrentState": STATES.get(state["state"], "Initialized"),
            "ActiveRecipe": state["recipe"] or "",
            "ActiveRecipeHash": state["recipe_hash"] or "",
        }
        asyncio.run_coroutine_threadsafe(self._write(values), self.loop)

    def publish_alarm(self, alarm: dict[str, Any]) -> None:
        """Not mapped: OPC 40100's conditions are not part of this subset (docs/plant.md)."""

    def close(self) -> None:
        pass

    # -- the server (its event loop) ----------------------------------------------------------

    async def _write(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            await self._nodes[key].write_value(value, ua.VariantType.String)

    async def _start(self) -> None:
        server = Server(user_manager=_Users(self.config))
        await server.init()
        server.set_endpoint(self.config.endpoint)
        server.set_server_name(f"AOI station {self.station_id}")
        await server.set_application_uri(application_uri(self.station_id))
        await secure(server, self.config, self.station_id, self.data_dir, ReadOnlyAnonymous())
        ns = await server.register_namespace(NAMESPACE)
        vision = await server.nodes.objects.add_object(ns, "VisionSystem")
        machine = await vision.add_object(ns, "VisionStateMachine")
        recipes = await vision.add_object(ns, "RecipeManagement")
        results = await vision.add_object(ns, "ResultManagement")
        strings = {
            "CurrentState": (machine, "Initialized"),
            "ActiveRecipe": (recipes, ""),
            "ActiveRecipeHash": (recipes, ""),
            "LastResult": (results, ""),
            "LastResults": (results, "[]"),
        }
        for key, (parent, value) in strings.items():
            self._nodes[key] = await parent.add_variable(ns, key, value, ua.VariantType.String)
        for method, kind in (("PrepareRecipe", "recipe"), ("PrepareProduct", "product")):
            await recipes.add_method(
                ns,
                method,
                self._method(kind),
                [ua.VariantType.String],
                [ua.VariantType.String],
            )
        self._guard(server)
        await server.start()
        self._server = server
        log.info("OPC UA server on %s", self.config.endpoint)

    def _method(self, kind: str) -> Callable[..., Any]:
        @uamethod
        async def prepare(parent: Any, external_id: str) -> str:  # noqa: ARG001
            # The recipe loads (and the engine warms up) off the server's loop.
            who = "OPC UA"
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    None, self.prepare, kind, external_id, who
                )
            except AoiError as err:
                raise ua.UaStatusCodeError(ua.StatusCodes.BadInvalidState) from err

        return prepare

    def _guard(self, server: Server) -> None:
        """Refuse a session to a client whose address ``allowed_clients`` does not list.

        asyncua has no admission hook; its processor names each external session by the
        peer's address when it creates it, so the check sits there (before any request).
        """
        create = server.iserver.create_session

        def guarded(name: Any, user: User = User(), external: bool = False) -> Any:  # noqa: B008
            host = name[0] if isinstance(name, tuple) else str(name)
            if external and not self.access.admits(str(host)):
                log.warning("OPC UA: refused %s (not in [opcua] allowed_clients)", host)
                raise ua.uaerrors.BadUserAccessDenied
            return create(name, user=user, external=external)

        server.iserver.create_session = guarded  # type: ignore[method-assign]
