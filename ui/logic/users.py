"""Who may do what at the station: operator, engineer and admin accounts with salted PIN hashes.

Accounts live in ``users.json`` in the station's data folder (beside the SQLite file), written
atomically and readable by the station's user only. A PIN or password is stored as a scrypt hash
with its own random salt (``hashlib.scrypt``: memory-hard, in the standard library); checking one
compares in constant time. Qt-free: the GUI calls it, and so can a setup script.

The station runs without anyone logged in: the shift operator's screens (operator, review) need
no account, and their decisions are signed ``operator`` unless an operator logs in by name.
Engineer screens need an engineer or admin account; user management needs an admin. The first
admin is created at the station itself (the login dialog offers it while no admin exists).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from aoi.errors import AoiError

USERS_FILE = "users.json"
#: scrypt cost: 16 MiB and about 50 ms per check on a station PC; stored with each hash.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 14, 8, 1
MIN_SECRET_CHARS = 4
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{2,32}$")


class UserError(AoiError):
    """An account cannot be created or changed as asked (the message says why)."""


class Role(enum.IntEnum):
    """Roles in increasing power; a role may do everything the roles below it may."""

    OPERATOR = 1
    ENGINEER = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.capitalize()


@dataclass(frozen=True)
class User:
    name: str
    role: Role


@dataclass(frozen=True)
class _Stored:
    name: str
    role: str
    salt: str
    hash: str
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P


def _hash(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 << 20, dklen=32)


def _check_secret(secret: str) -> None:
    if len(secret) < MIN_SECRET_CHARS:
        msg = f"a PIN or password must have at least {MIN_SECRET_CHARS} characters"
        raise UserError(msg)


class UserStore:
    """The station's accounts in one JSON file; every method reads the file afresh."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_folder(cls, data_dir: Path) -> UserStore:
        return cls(data_dir / USERS_FILE)

    def _read(self) -> dict[str, _Stored]:
        if not self.path.is_file():
            return {}
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return {u["name"]: _Stored(**u) for u in raw["users"]}
        except (OSError, ValueError, KeyError, TypeError) as err:
            msg = f"{self.path}: the users file cannot be read ({err}); restore it from backup"
            raise UserError(msg) from err

    def _write(self, users: dict[str, _Stored]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        text = json.dumps({"users": [asdict(u) for u in users.values()]}, indent=2)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        tmp.replace(self.path)

    def users(self) -> list[User]:
        return [User(u.name, Role[u.role]) for u in sorted(self._read().values(), key=_key)]

    def has_admin(self) -> bool:
        return any(u.role == Role.ADMIN.name for u in self._read().values())

    def authenticate(self, name: str, secret: str) -> User | None:
        """The account if ``secret`` is its PIN or password, else None."""
        stored = self._read().get(name.strip())
        if stored is None:
            # Spend the same time as a real check: response time does not reveal names.
            _hash(secret, b"0" * 16, SCRYPT_N, SCRYPT_R, SCRYPT_P)
            return None
        digest = _hash(secret, bytes.fromhex(stored.salt), stored.n, stored.r, stored.p)
        if not hmac.compare_digest(digest.hex(), stored.hash):
            return None
        return User(stored.name, Role[stored.role])

    def add(self, name: str, role: Role, secret: str) -> User:
        name = name.strip()
        if not NAME_PATTERN.match(name):
            msg = f"a user name must be 2 to 32 letters, digits or _.@-, got {name!r}"
            raise UserError(msg)
        _check_secret(secret)
        users = self._read()
        if name in users:
            msg = f"user {name!r} exists already"
            raise UserError(msg)
        users[name] = _new(name, role, secret)
        self._write(users)
        return User(name, role)

    def set_role(self, name: str, role: Role) -> Role:
        """Give ``name`` a new role; returns the old one. The last admin stays an admin."""
        users = self._read()
        stored = self._get(users, name)
        old = Role[stored.role]
        if old is Role.ADMIN and role is not Role.ADMIN and self._admins(users) == 1:
            msg = f"{name} is the last admin; make another user admin first"
            raise UserError(msg)
        users[name] = _Stored(**{**asdict(stored), "role": role.name})
        self._write(users)
        return old

    def set_secret(self, name: str, secret: str) -> None:
        _check_secret(secret)
        users = self._read()
        stored = self._get(users, name)
        users[name] = _new(name, Role[stored.role], secret)
        self._write(users)

    def remove(self, name: str) -> Role:
        users = self._read()
        stored = self._get(users, name)
        if stored.role == Role.ADMIN.name and self._admins(users) == 1:
            msg = f"{name} is the last admin and cannot be removed"
            raise UserError(msg)
        del users[name]
        self._write(users)
        return Role[stored.role]

    def _get(self, users: dict[str, _Stored], name: str) -> _Stored:
        if name not in users:
            msg = f"no user {name!r}; known: {sorted(users)}"
            raise UserError(msg)
        return users[name]

    @staticmethod
    def _admins(users: dict[str, _Stored]) -> int:
        return sum(u.role == Role.ADMIN.name for u in users.values())


def _key(u: _Stored) -> tuple[int, str]:
    return (-Role[u.role], u.name)


def _new(name: str, role: Role, secret: str) -> _Stored:
    salt = secrets.token_bytes(16)
    digest = _hash(secret, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return _Stored(name, role.name, salt.hex(), digest.hex())
