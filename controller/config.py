"""Settings: `config.yaml` defaults, overridden by `PVEM_<SECTION>__<KEY>` environment variables.

This module owns every configuration key pvem reads. The README documents each one; a key added here
must be added there too. Secrets (JWT secret, Proxmox password or token) belong in the environment,
never in the committed config.yaml.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

ENV_PREFIX = "PVEM_"
DEFAULT_CONFIG_FILE = "config.yaml"
MIN_JWT_SECRET_BYTES = 32


class _Section(BaseModel):
    # A typo in config.yaml must fail loudly, not be ignored.
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    threads: int = Field(16, ge=1, le=256)
    # API processes answering on the one socket (Python runs one thread at a time per process: a second
    # worker lets the API use a second core). Worker 0 is `pvem serve` itself (with the controller).
    workers: int = Field(1, ge=1, le=64)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    # Addresses (or CIDRs) of reverse proxies whose X-Forwarded-For is believed.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Open connections waitress accepts (idle keep-alive sockets count) and how long an idle one is kept:
    # waitress's own 100 / 120 s let ~100 idle sockets make the API unreachable.
    connection_limit: int = Field(1000, ge=1, le=100_000)
    channel_timeout_seconds: int = Field(30, ge=1, le=3600)


class DatabaseSettings(_Section):
    url: str = "sqlite:///var/pvem.db"
    echo: bool = False


class QuotaSettings(_Section):
    """Limits on what one user may own (null: unlimited). `auth.default_quota` is copied to new users."""

    max_vms: int | None = Field(None, ge=0)
    max_cpu_cores: int | None = Field(None, ge=0)
    max_memory_mb: int | None = Field(None, ge=0)
    max_disk_gb: int | None = Field(None, ge=0)


class AuthSettings(_Section):
    jwt_secret: SecretStr | None = None
    issuer: str = "pvem"
    token_ttl_minutes: int = Field(60, ge=1, le=60 * 24 * 30)
    allow_registration: bool = True
    admin_email: str | None = None
    admin_password: SecretStr | None = None
    login_max_failures: int = Field(5, ge=1)
    login_max_failures_per_address: int = Field(20, ge=1)
    login_window_seconds: int = Field(300, ge=1)
    # argon2id cost; the defaults are argon2-cffi's (RFC 9106 low-memory profile).
    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_kib: int = Field(65536, ge=64)
    default_quota: QuotaSettings = Field(default_factory=QuotaSettings)


class ProxmoxSettings(_Section):
    host: str | None = None
    port: int = Field(8006, ge=1, le=65535)
    user: str = "root@pam"
    password: SecretStr | None = None
    token_name: str | None = None
    token_value: SecretStr | None = None
    verify_ssl: bool = True
    ca_file: str | None = None
    timeout_seconds: float = Field(15.0, gt=0)
    storage: str = "local-lvm"
    bridge: str = "vmbr0"
    default_node: str | None = None
    vmid_min: int = Field(100, ge=100, le=999_999_999)
    vmid_max: int = Field(999_999, ge=100, le=999_999_999)

    @model_validator(mode="after")
    def _vmid_range(self) -> ProxmoxSettings:
        if self.vmid_min > self.vmid_max:
            raise ValueError("proxmox.vmid_min must not exceed proxmox.vmid_max")
        return self


class ControllerSettings(_Section):
    reconcile_interval_seconds: float = Field(30.0, gt=0)
    workers: int = Field(16, ge=1, le=64)
    per_node_workers: int = Field(16, ge=1, le=64)
    poll_interval_seconds: float = Field(1.0, gt=0)
    resync_interval_seconds: float = Field(600.0, gt=0)
    error_retry_seconds: float = Field(300.0, gt=0)
    backoff_max_seconds: float = Field(60.0, gt=0)
    shutdown_timeout_seconds: int = Field(60, ge=1)
    reboot_policy: Literal["never", "auto"] = "never"
    max_concurrent_reboots: int = Field(1, ge=1, le=64)
    on_missing: Literal["recreate", "report"] = "recreate"
    stop_grace_seconds: float = Field(30.0, ge=0)
    # issue 7: how long a clone's task may run (full clones of big disks take minutes), and how often the
    # guest agent of each running VM is asked for its addresses.
    clone_timeout_seconds: float = Field(3600.0, gt=0)
    agent_refresh_seconds: float = Field(30.0, gt=0)

    # Leader election between controller replicas sharing one database (see README "Scale-out").
    lease_seconds: float = Field(15.0, gt=0)
    lease_renew_seconds: float = Field(5.0, gt=0)
    # `pvem controller` alone has no API; with a port it serves /metrics and /api/health(/ready) on
    # server.host (null: nothing). `pvem controller --metrics-port N` sets it too.
    metrics_port: int | None = Field(None, ge=0, le=65535)

    @model_validator(mode="after")
    def _lease_timing(self) -> ControllerSettings:
        if self.lease_renew_seconds >= self.lease_seconds:
            raise ValueError("controller.lease_renew_seconds must be less than controller.lease_seconds")
        return self


class StatsSettings(_Section):
    interval_seconds: float = Field(10.0, gt=0)
    retention_minutes: int = Field(1440, ge=1)


class ManifestSettings(_Section):
    """Bounds on one `POST /api/manifests` request (its size is bounded by server.max_body_bytes)."""

    max_documents: int = Field(5000, ge=1)
    max_depth: int = Field(32, ge=4, le=1000)
    max_aliases: int = Field(100, ge=0)
    max_nodes: int = Field(100_000, ge=100)


class EventsSettings(_Section):
    """The change feed and `GET /api/events` (Server-Sent Events)."""

    retention_minutes: int = Field(60, ge=1)  # feed rows older than this are pruned
    heartbeat_seconds: float = Field(15.0, gt=0)  # a comment line on idle streams
    poll_seconds: float = Field(0.5, gt=0)  # the feed poll (SQLite's only path; PostgreSQL's safety net)
    # Each stream holds a server thread; beyond this (and never more than half of server.threads) 503.
    max_streams: int = Field(8, ge=1)


class WebhookSettings(_Section):
    """Webhook targets and delivery (the controller process delivers)."""

    # CIDRs exempt from the refusal of private, loopback and link-local targets (e.g. 10.0.0.0/8).
    allowed_networks: list[str] = Field(default_factory=list)
    timeout_seconds: float = Field(5.0, gt=0)
    poll_seconds: float = Field(1.0, gt=0)
    retry_base_seconds: float = Field(5.0, gt=0)  # doubled after each failed attempt
    retry_max_seconds: float = Field(3600.0, gt=0)
    max_attempts: int = Field(10, ge=1)
    delivery_retention_hours: int = Field(168, ge=1)

    @model_validator(mode="after")
    def _networks(self) -> WebhookSettings:
        import ipaddress

        for entry in self.allowed_networks:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"webhooks.allowed_networks: {entry!r} is not a CIDR") from exc
        return self


class LoggingSettings(_Section):
    # auto: readable console lines on a terminal, JSON otherwise.
    format: Literal["json", "console", "auto"] = "auto"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"


class _SectionEnvSource(EnvSettingsSource):
    """The environment source, reading only `PVEM_<SECTION>__<KEY>` forms.

    `PVEM_SERVER` and `PVEM_TOKEN` are the CLI client's variables (a server URL, a token); without this
    filter pydantic-settings would try to parse `PVEM_SERVER` as the whole `server` section.
    """

    def _load_env_vars(self) -> Mapping[str, str | None]:
        loaded = super()._load_env_vars()
        return {key: value for key, value in loaded.items() if "__" in key}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    proxmox: ProxmoxSettings = Field(default_factory=ProxmoxSettings)
    controller: ControllerSettings = Field(default_factory=ControllerSettings)
    stats: StatsSettings = Field(default_factory=StatsSettings)
    manifests: ManifestSettings = Field(default_factory=ManifestSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    events: EventsSettings = Field(default_factory=EventsSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, _SectionEnvSource(settings_cls)]
        if settings_cls.model_config.get("yaml_file"):
            sources.append(YamlConfigSettingsSource(settings_cls))
        return tuple(sources)

    def jwt_key(self) -> bytes:
        """The HMAC key: the UTF-8 bytes of auth.jwt_secret, so other services can verify tokens."""
        if self.auth.jwt_secret is None:
            raise ConfigError("auth.jwt_secret is not set")
        return self.auth.jwt_secret.get_secret_value().encode("utf-8")


class ConfigError(Exception):
    """The configuration cannot be used; the message says what to change."""


def load_settings(config_path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read settings: keyword overrides > environment > the YAML file > built-in defaults.

    `config_path` None means `$PVEM_CONFIG`, else `./config.yaml` when it exists.
    """
    path: Path | None
    if config_path is not None:
        path = Path(config_path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
    else:
        env_path = os.environ.get("PVEM_CONFIG")
        if env_path:
            path = Path(env_path)
            if not path.is_file():
                raise ConfigError(f"config file not found (PVEM_CONFIG): {path}")
        else:
            path = Path(DEFAULT_CONFIG_FILE) if Path(DEFAULT_CONFIG_FILE).is_file() else None

    class _FileSettings(Settings):
        model_config = SettingsConfigDict(yaml_file=str(path) if path else None)

    try:
        loaded = _FileSettings(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration{f' in {path}' if path else ''}: {describe_errors(exc)}") from exc
    except Exception as exc:  # a YAML error: a config mistake too
        text = " ".join(str(exc).split())
        raise ConfigError(f"invalid configuration{f' in {path}' if path else ''}: {text}") from exc
    return loaded


def describe_errors(exc: ValidationError) -> str:
    """pydantic's errors in one line, named by config key (`controller.workers: ...`), without class names or
    documentation URLs; environment variables are named the way they are set."""
    parts = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error.get("loc", ()))
        kind = error.get("type", "")
        message = "unknown key" if kind == "extra_forbidden" else str(error.get("msg", "invalid value"))
        message = message.removeprefix("Value error, ")
        given = error.get("input")
        shown = f" (got {given!r})" if kind != "extra_forbidden" and isinstance(given, (str, int, float)) else ""
        parts.append(f"{key or 'config'}: {message}{shown}")
    return "; ".join(parts)


def require_production_secret(settings: Settings) -> None:
    """Outside demo mode, refuse to run without a JWT secret of at least 32 bytes."""
    secret = settings.auth.jwt_secret
    if secret is None or len(secret.get_secret_value().encode("utf-8")) < MIN_JWT_SECRET_BYTES:
        raise ConfigError(
            f"auth.jwt_secret must be set to at least {MIN_JWT_SECRET_BYTES} bytes: "
            "export PVEM_AUTH__JWT_SECRET=\"$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')\""
        )
