"""Who may connect to the station's Modbus server, how many at once, and for how long idle.

The ``[plc]`` fields ``allowed_clients``, ``allow_readers``, ``max_connections`` and
``idle_timeout_s`` (server role) become one :class:`ServerAccess`. Control of the registers
(who may write) is decided per connection by the server: see plc/README.md, "Who may drive
the station".
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from aoi.config import PlcConfig

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ServerAccess:
    """The server's admission rules; the defaults admit anyone (a local soft PLC, tests)."""

    #: Addresses that may connect; empty admits any address.
    allowed_clients: tuple[IpNetwork, ...] = ()
    #: Connections besides the controlling one may read; false refuses them at connect.
    allow_readers: bool = True
    max_connections: int = 4
    #: A connection with no complete request for this long is closed.
    idle_timeout_s: float = 10.0

    @classmethod
    def from_config(cls, config: PlcConfig) -> ServerAccess:
        """The rules of a ``[plc]`` section (its addresses were checked when it loaded)."""
        return cls(
            allowed_clients=tuple(
                ipaddress.ip_network(a, strict=False) for a in config.allowed_clients
            ),
            allow_readers=config.allow_readers,
            max_connections=config.max_connections,
            idle_timeout_s=config.idle_timeout_s,
        )

    @classmethod
    def from_config_addresses(cls, addresses: tuple[str, ...]) -> ServerAccess:
        """Only the allow-list (the OPC UA server's ``[opcua] allowed_clients``)."""
        return cls(allowed_clients=tuple(ipaddress.ip_network(a, strict=False) for a in addresses))

    def admits(self, address: str) -> bool:
        """Whether a client at ``address`` (an IP, IPv4-mapped IPv6 too) may connect."""
        if not self.allowed_clients:
            return True
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.allowed_clients)


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the server on this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface
