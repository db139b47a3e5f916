"""Stored login and the server/token resolution order: flag > environment > stored login > default.

The login lives in `$XDG_CONFIG_HOME/pvem/credentials.json` (default `~/.config/pvem/`), the file
mode 0600 and the directory 0700, as `{"server": ..., "token": ..., "email": ...}`. A stored token
is only ever sent to the server it was issued by.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from api.client.errors import UsageError
from api.client.http import normalise_server

DEFAULT_SERVER = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class Credentials:
    server: str
    token: str
    email: str | None = None


@dataclass(frozen=True)
class Target:
    """Where a command talks to and with what token; `source` says where the token came from."""

    server: str
    token: str | None
    source: str  # "flag", "environment", "stored login" or "none"


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "pvem"


def credentials_path(env: Mapping[str, str] | None = None) -> Path:
    return config_dir(env) / "credentials.json"


def load(env: Mapping[str, str] | None = None) -> Credentials | None:
    """The stored login, None when there is none; a damaged file is a usage error naming it."""
    path = credentials_path(env)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}; run `pvem logout` and log in again") from exc
    if not (isinstance(raw, dict) and isinstance(raw.get("server"), str) and isinstance(raw.get("token"), str)):
        raise UsageError(f"{path} is not a pvem login; run `pvem logout` and log in again")
    email = raw.get("email")
    return Credentials(raw["server"], raw["token"], email if isinstance(email, str) else None)


def save(credentials: Credentials, env: Mapping[str, str] | None = None) -> Path:
    """Write atomically; the file is never readable by others, not even for a moment."""
    path = credentials_path(env)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    payload = json.dumps({"server": credentials.server, "token": credentials.token, "email": credentials.email},
                         indent=2) + "\n"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def remove(env: Mapping[str, str] | None = None) -> bool:
    """Forget the stored login; False when there was none."""
    try:
        credentials_path(env).unlink()
    except FileNotFoundError:
        return False
    return True


def resolve(server_flag: str | None, token_flag: str | None, env: Mapping[str, str] | None = None,
            stored: Credentials | None = None) -> Target:
    """Server: flag > $PVEM_SERVER > stored login > default. Token: flag > $PVEM_TOKEN > stored login,
    the stored token only when it was issued by the resolved server."""
    env = os.environ if env is None else env
    if server_flag:
        server = normalise_server(server_flag)
    elif env.get("PVEM_SERVER"):
        server = normalise_server(env["PVEM_SERVER"])
    elif stored is not None:
        server = normalise_server(stored.server)
    else:
        server = DEFAULT_SERVER
    if token_flag:
        return Target(server, token_flag, "flag")
    if env.get("PVEM_TOKEN"):
        return Target(server, env["PVEM_TOKEN"], "environment")
    if stored is not None and normalise_server(stored.server) == server:
        return Target(server, stored.token, "stored login")
    return Target(server, None, "none")
