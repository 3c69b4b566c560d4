"""The OPC UA server's security: its certificate, policies and identity tokens.

``[opcua] security = "sign_encrypt"`` (the default) offers one endpoint, SecurityPolicy
Basic256Sha256 in mode SignAndEncrypt, so the user's password and every value travel
encrypted. Its certificate and key are the configured files, or a self-signed pair made at the
first start in ``<data folder>/opcua/`` (the key readable by the station's user only) and reused
afterwards (asyncua makes a new certificate when the old one expired or names another host).
Client certificates are not checked against a trust list: the session's user and password
decide what a client may do (docs/plant.md). Anonymous sessions are offered only with
``allow_anonymous`` (and then read and browse only: opcua.ReadOnlyAnonymous).
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from asyncua import Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import PermissionRuleset
from cryptography.x509.oid import ExtendedKeyUsageOID

from aoi.config import OpcuaConfig
from aoi.errors import AoiError

log = logging.getLogger(__name__)

CERT_NAME = "server-cert.der"
KEY_NAME = "server-key.pem"


class OpcuaSecurityError(AoiError):
    """The OPC UA server's certificate or key cannot be made or read."""


def application_uri(station_id: str) -> str:
    """The server's ApplicationUri (also in its certificate's subject alternative names)."""
    return f"urn:aoi-station:{station_id}"


async def _self_signed(folder: Path, station_id: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / CERT_NAME, folder / KEY_NAME
    new = not key.exists()
    await setup_self_signed_certificate(
        key,
        cert,
        application_uri(station_id),
        socket.gethostname(),
        [ExtendedKeyUsageOID.SERVER_AUTH],
        {"commonName": f"AOI station {station_id}", "organizationName": "aoi-station"},
    )
    os.chmod(key, 0o600)  # the key is the server's identity: its user only
    if new:
        log.info("OPC UA: made a self-signed certificate %s", cert)
    return cert, key


async def secure(
    server: Server,
    config: OpcuaConfig,
    station_id: str,
    data_dir: Path,
    ruleset: PermissionRuleset,
) -> None:
    """Set the server's policies, identity tokens and (encrypted) certificate and key."""
    tokens: list[type] = [ua.UserNameIdentityToken]
    if config.allow_anonymous:
        tokens.insert(0, ua.AnonymousIdentityToken)
    server.set_identity_tokens(tokens)
    if config.security == "none":
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity], ruleset)
        log.warning("OPC UA: [opcua] security = none: the password crosses the network in clear")
        return
    server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt], ruleset)
    try:
        if config.certificate or config.private_key:
            if not (config.certificate and config.private_key):
                msg = "[opcua] certificate and private_key go together (or both empty)"
                raise OpcuaSecurityError(msg)
            cert, key = Path(config.certificate), Path(config.private_key)
        else:
            cert, key = await _self_signed(data_dir / "opcua", station_id)
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
    except (OSError, ValueError) as err:
        msg = f"OPC UA certificate or key cannot be used ({err})"
        raise OpcuaSecurityError(msg) from err
