"""A private RabbitMQ node with its AMQP 1.0 plugin (Debian ``rabbitmq-server``; .ci/run
installs it), started by the tests on free ports in a folder of their own."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from plant_helpers import free_port, wait_listening
from proton.utils import BlockingConnection

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
CTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")


class RabbitMQ:
    """One node (Erlang VM); :meth:`stop` stops it as a service stop would, :meth:`start`
    starts it again on the same port and data (its queues survive)."""

    def __init__(self, folder: Path, durable_queues: tuple[str, ...] = ()) -> None:
        if not SERVER.exists() or shutil.which("erl") is None:
            pytest.skip("rabbitmq-server is not installed (Debian rabbitmq-server; .ci/run does)")
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        (folder / "enabled_plugins").write_text("[rabbitmq_amqp1_0].\n", encoding="utf-8")
        # The queues a plant's broker admin declares (durable: they outlive a restart), as
        # definitions the node imports at each boot.
        queues = [
            {"name": q, "vhost": "/", "durable": True, "auto_delete": False, "arguments": {}}
            for q in durable_queues
        ]
        # With definitions the node seeds no default vhost and user: they are given here too
        # (guest/guest, which AMQP 1.0's anonymous login maps to).
        salt = os.urandom(4)
        digest = base64.b64encode(salt + hashlib.sha256(salt + b"guest").digest()).decode()
        definitions = {
            "vhosts": [{"name": "/"}],
            "users": [
                {
                    "name": "guest",
                    "password_hash": digest,
                    "hashing_algorithm": "rabbit_password_hashing_sha256",
                    "tags": ["administrator"],
                }
            ],
            "permissions": [
                {"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}
            ],
            "queues": queues,
        }
        (folder / "definitions.json").write_text(json.dumps(definitions), encoding="utf-8")
        (folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n"
            "definitions.import_backend = local_filesystem\n"
            f"definitions.local.path = {folder / 'definitions.json'}\n",
            encoding="utf-8",
        )
        name = f"aoitest{self.port}@localhost"
        self.env = {
            **os.environ,
            "HOME": str(folder),  # the Erlang cookie
            "RABBITMQ_NODENAME": name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "ERL_EPMD_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq"),
            "RABBITMQ_CONF_ENV_FILE": str(folder / "rabbitmq-env.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(folder / "advanced.config"),
            "RABBITMQ_PID_FILE": str(folder / "rabbit.pid"),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, address: str) -> str:
        return f"amqp://127.0.0.1:{self.port}/{address}"

    def start(self, timeout_s: float = 120.0) -> None:
        with (self.folder / "server.out").open("ab") as out:
            self.proc = subprocess.Popen(
                [str(SERVER)], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        wait_listening(self.proc, self.port, timeout_s, f"rabbitmq ({self.folder}/server.out)")

    def stop(self) -> None:
        """``rabbitmqctl stop``: the node saves its durable queues and exits."""
        if self.proc is None:
            return
        subprocess.run(
            [str(CTL), "stop"], env=self.env, capture_output=True, timeout=60, check=False
        )
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def drain(self, address: str, count: int, timeout_s: float = 30.0) -> list[Any]:
        """``count`` messages from the queue at ``address``, each accepted (a proton receiver,
        as an MES reads the queue)."""
        conn = BlockingConnection(f"127.0.0.1:{self.port}", timeout=timeout_s)
        try:
            receiver = conn.create_receiver(address)
            got = []
            for _ in range(count):
                got.append(receiver.receive(timeout=timeout_s))
                receiver.accept()
            return got
        finally:
            conn.close()

    def queued(self, queue: str) -> int:
        """How many messages wait in the queue named ``queue`` (rabbitmqctl)."""
        out = subprocess.run(
            [str(CTL), "list_queues", "-q", "--no-table-headers", "name", "messages"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        rows = dict(line.split("\t") for line in out.strip().splitlines() if "\t" in line)
        return int(rows.get(queue, 0))
