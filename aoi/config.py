"""Station configuration: the hardware and site settings of one station (TOML).

A recipe says how to inspect a product; the station config says what this PC is wired to:
the GenTL producers and camera, the inference backend, and where data goes. Every field has a
default so a station with no file runs the embedded default (synthetic boards, CPU, soft PLC).
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aoi.errors import StationConfigError
from aoi.recipe import format_validation_error
from aoi.types import BackendName

#: The station's Modbus role: server (polled by the PLC) or client (writes into the PLC).
PlcRole = Literal["server", "client"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraConfig(_Strict):
    #: GenTL producer files; empty means every ``*.cti`` in GENICAM_GENTL64_PATH.
    cti_paths: list[Path] = Field(default_factory=list)
    #: Serial number, user-defined name or model of the camera; empty means the first found.
    device: str = ""
    fetch_timeout_s: float = Field(default=2.0, gt=0, le=60)


class InferenceConfig(_Strict):
    """The inference backend (``[inference]``); docs/tensorrt.md explains the TensorRT fields."""

    backend: BackendName = BackendName.AUTO
    #: CPU threads for ONNX Runtime; 0 lets it choose (all cores).
    threads: int = Field(default=0, ge=0, le=256)
    #: TensorRT engine cache folder; empty means the user's cache folder (~/.cache/aoi/engines).
    engine_dir: Path | None = None
    #: GPU memory TensorRT's builder may use as scratch space while building an engine.
    workspace_mib: int = Field(default=2048, ge=16, le=1_048_576)
    #: Replay TensorRT inference as one CUDA graph per input shape (fewer launches per cycle).
    cuda_graph: bool = False
    #: Pad a tiled frame's short last batch to the profile's opt batch, so the GPU sees one
    #: input shape (see ``OnnxRuntimeBackend``); unset = on for ONNX Runtime's CUDA provider only.
    pad_batch: bool | None = None


class StorageConfig(_Strict):
    """Where inspections, the journal and the image archive go (``[storage]``; aoi/storage/)."""

    #: Any SQLAlchemy URL (``postgresql+psycopg://...`` for a fleet); empty means a SQLite file
    #: in the user's data folder.
    database_url: str = ""
    #: Folder of the append-only journal; empty means ``<data folder>/journal``.
    journal_dir: Path | None = None
    #: Folder of the image archive; empty means ``<data folder>/archive``.
    archive_dir: Path | None = None
    #: Archive NG, REVIEW and ERROR images (and the OK sample below).
    archive_images: bool = True
    #: Share of OK boards whose image is archived too (0.01: one in a hundred).
    ok_sample_rate: float = Field(default=0.0, ge=0, le=1)
    retention_days: int = Field(default=90, ge=1, le=36500)
    #: The archive deletes its oldest images to keep this much free on its disk.
    min_free_gb: float = Field(default=5.0, ge=0)
    #: SQLite ``synchronous``: NORMAL (WAL: durable at checkpoints) or FULL (every commit).
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    #: fsync every journal line (survives power loss, costs the cycle a disk flush).
    journal_fsync: bool = False
    #: How long a write waits for a lock (SQLite busy_timeout, PostgreSQL lock_timeout).
    busy_timeout_ms: int = Field(default=5000, ge=0, le=600_000)
    batch_rows: int = Field(default=200, ge=1, le=10_000)
    flush_interval_ms: int = Field(default=150, ge=10, le=10_000)
    queue_size: int = Field(default=4096, ge=16, le=1_000_000)
    archive_queue_size: int = Field(default=32, ge=1, le=10_000)
    #: Local hours at which shifts start, for yield per shift.
    shift_starts_h: tuple[int, ...] = (6, 14, 22)
    #: IANA time zone of the reports (``Europe/Berlin``); empty means the PC's local zone.
    timezone: str = ""

    @field_validator("shift_starts_h")
    @classmethod
    def _shifts(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(not 0 <= h <= 23 for h in v) or list(v) != sorted(set(v)):
            msg = f"must be increasing distinct hours in 0..23, got {list(v)}"
            raise ValueError(msg)
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        if v:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError) as err:
                msg = f"must be an IANA time zone such as Europe/Berlin, got {v!r}"
                raise ValueError(msg) from err
        return v


class PlcMapConfig(_Strict):
    """Register map overrides (``[plc.map]``); plc/README.md has the table and the defaults."""

    #: First register of the block the PLC writes (control, heartbeat, part sequence, ...).
    plc_base: int = Field(default=0, ge=0, le=65535)
    #: First register of the block the station writes (status, heartbeat, result, ...).
    station_base: int = Field(default=32, ge=0, le=65535)
    #: Length of the serial / lot text (two characters per register).
    serial_chars: int = Field(default=32, ge=2, le=80)
    #: Field name -> offset inside its block, to move single fields (``verdict = 20``); the
    #: link checks names and overlaps when it opens.
    offsets: dict[str, int] = Field(default_factory=dict)


class PlcConfig(_Strict):
    """The Modbus TCP link to the line PLC (``[plc]``); plc/README.md explains every field."""

    #: server: the PLC polls the station; client: the station writes into the PLC's registers.
    role: PlcRole = "server"
    #: server: interface to listen on (the line network's address on a production PC);
    #: client: the PLC's address.
    host: str = "127.0.0.1"
    port: int = Field(default=502, ge=1, le=65535)
    #: The PLC's unit id (client role); as server the station answers any unit id.
    unit_id: int = Field(default=1, ge=0, le=255)
    heartbeat_period_ms: float = Field(default=250.0, ge=10, le=10_000)
    #: A heartbeat is lost after this many periods without a change.
    watchdog_periods: int = Field(default=3, ge=2, le=20)
    #: READY needs a live PLC heartbeat (false for a PLC program that has none).
    require_plc_heartbeat: bool = True
    poll_period_ms: float = Field(default=5.0, ge=1, le=1000)
    response_timeout_ms: float = Field(default=500.0, ge=10, le=30_000)
    reconnect_min_ms: float = Field(default=100.0, ge=10, le=60_000)
    reconnect_max_ms: float = Field(default=2000.0, ge=10, le=600_000)
    result_ack_timeout_ms: float = Field(default=5000.0, ge=10, le=600_000)
    busy_timeout_ms: float = Field(default=10_000.0, ge=100, le=600_000)
    #: ONLINE at start; the PLC switches it with the SET_ONLINE command.
    start_online: bool = True
    #: Server role: PLC addresses (IPs or CIDRs such as ``192.168.10.0/24``) that may connect;
    #: empty admits any address, with a warning at start when not listening on loopback.
    allowed_clients: tuple[str, ...] = ()
    #: Server role: connections besides the controlling one may read (their writes are answered
    #: exception 01); false refuses them at connect.
    allow_readers: bool = True
    #: Server role: connections beyond this many are closed at connect.
    max_connections: int = Field(default=4, ge=1, le=64)
    #: Server role: a connection without a request for this long is closed.
    idle_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    map: PlcMapConfig = PlcMapConfig()

    @field_validator("allowed_clients")
    @classmethod
    def _addresses(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for address in v:
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError as err:
                msg = f"must be IPs or networks (192.168.10.5, 10.0.0.0/24), got {address!r}"
                raise ValueError(msg) from err
        return v


class MqttConfig(_Strict):
    """``[mqtt]``: inspections, state and alarms to the plant's MQTT broker (off: no url)."""

    #: ``mqtt://host:port``; empty: off.
    url: str = ""
    username: str = ""
    password: str = ""
    topic_prefix: str = "aoi"
    #: 1: at least once (a message in flight when the broker dies may come twice);
    #: 2: exactly once (paho resumes the persistent session). docs/plant.md.
    qos: Literal[1, 2] = 1
    connect_timeout_s: float = Field(default=3.0, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, v: str) -> str:
        return _url(v, ("mqtt",))


class CfxConfig(_Strict):
    """``[cfx]``: IPC-CFX messages over AMQP 1.0 (off: no url); docs/plant.md."""

    #: ``amqp://host:port/address`` (the exchange or queue CFX messages go to); empty: off.
    url: str = ""
    #: This station's CFX handle (the envelope's Source), e.g. ``acme.smt1.aoi1``.
    handle: str = ""
    #: The envelope's Target (empty: a broadcast, null).
    target: str = ""
    username: str = ""
    password: str = ""
    connect_timeout_s: float = Field(default=3.0, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _amqp_url(cls, v: str) -> str:
        return _url(v, ("amqp", "amqps"))


class OpcuaConfig(_Strict):
    """``[opcua]``: the OPC 40100 Machine Vision server (off: no endpoint); docs/plant.md."""

    #: ``opc.tcp://host:port`` the server listens on; empty: off.
    endpoint: str = ""
    #: Writes and method calls need this user (anonymous sessions only read); empty: no one.
    username: str = ""
    password: str = ""
    #: Clients allowed to connect (IPs or networks, like ``[plc] allowed_clients``); empty: all.
    allowed_clients: tuple[str, ...] = ()
    results_kept: int = Field(default=10, ge=1, le=1000)
    #: ``sign_encrypt``: SecurityPolicy Basic256Sha256, SignAndEncrypt only (the password is
    #: encrypted); ``none``: no signing, no encryption (the password crosses in clear).
    security: Literal["sign_encrypt", "none"] = "sign_encrypt"
    #: The server's certificate (DER or PEM) and private key (PEM); empty: a self-signed pair
    #: made at the first start in ``<data folder>/opcua/`` and kept there.
    certificate: str = ""
    private_key: str = ""
    #: Anonymous sessions (read and browse only); off: every session needs the user.
    allow_anonymous: bool = False

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        return _url(v, ("opc.tcp",))

    @field_validator("allowed_clients")
    @classmethod
    def _addresses(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return PlcConfig._addresses(v)


class PlantConfig(_Strict):
    """``[plant]``: how the publishers' process runs (docs/plant.md); used when any of
    ``[mqtt]``, ``[cfx]``, ``[opcua]`` is on."""

    #: The CPUs (Linux numbers, as ``taskset`` and systemd's ``CPUAffinity=`` count) the
    #: publishers run on once open; empty: the station's own. Give them a core the cycle
    #: does not use (docs/plant.md, "Giving the publishers a core").
    cpus: tuple[int, ...] = ()
    #: Their niceness once open (0: the station's priority; 19, the default: the lowest, so
    #: publishing takes the CPU the cycle leaves idle; docs/plant.md).
    niceness: int = Field(default=19, ge=0, le=19)

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(c < 0 for c in v):
            msg = f"must be CPU numbers from 0, got {list(v)}"
            raise ValueError(msg)
        return tuple(sorted(set(v)))


def _url(v: str, schemes: tuple[str, ...]) -> str:
    if v and v.split("://", 1)[0] not in schemes:
        msg = f"must start with {' or '.join(s + '://' for s in schemes)}, got {v!r}"
        raise ValueError(msg)
    return v


class StationConfig(_Strict):
    station_id: str = Field(default="station-1", min_length=1, max_length=64)
    camera: CameraConfig = CameraConfig()
    inference: InferenceConfig = InferenceConfig()
    storage: StorageConfig = StorageConfig()
    plc: PlcConfig = PlcConfig()
    mqtt: MqttConfig = MqttConfig()
    cfx: CfxConfig = CfxConfig()
    opcua: OpcuaConfig = OpcuaConfig()
    plant: PlantConfig = PlantConfig()


def load_station_config(path: str | Path | None) -> StationConfig:
    """The station config from ``path``, or the defaults when ``path`` is None."""
    if path is None:
        return StationConfig()
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        msg = f"{path}: station config file not found"
        raise StationConfigError(msg) from err
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        msg = f"{path}: cannot read station config ({err})"
        raise StationConfigError(msg) from err
    try:
        config = StationConfig.model_validate(raw)
    except ValidationError as err:
        raise StationConfigError(format_validation_error(str(path), err)) from err
    base = path.resolve().parent
    paths = [p if p.is_absolute() else base / p for p in config.camera.cti_paths]
    camera = config.camera.model_copy(update={"cti_paths": paths})
    storage = config.storage.model_copy(
        update={
            k: base / p
            for k in ("journal_dir", "archive_dir")
            if (p := getattr(config.storage, k)) is not None and not p.is_absolute()
        }
    )
    inference = config.inference
    if inference.engine_dir is not None and not inference.engine_dir.is_absolute():
        inference = inference.model_copy(update={"engine_dir": base / inference.engine_dir})
    return config.model_copy(update={"camera": camera, "storage": storage, "inference": inference})
