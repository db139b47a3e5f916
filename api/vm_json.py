"""VM answers rendered by the database: one JSON text per row for the hot reads (`GET /api/vms`, `/api/vms/{id}`).

The answer has 38 fields made of 42 columns. Decoding each column in Python (type processors, datetimes,
JSON) and encoding it again costs most of a list's time, so the hot reads ask the database for the
finished object instead: SQLite's `json_object`, PostgreSQL's `json_build_object`, with the same
conversions `api.schemas.VM_FIELDS` makes in Python (timestamps to the second with a `Z`, booleans,
JSON columns embedded, `{}`/`[]` for empty ones, `restart_pending`, `template`, `cloud_init` with
`password_set` and never the password). The text goes out verbatim (orjson.Fragment).

`VM_FIELDS` stays the one definition of the answer (ORM paths, OpenAPI); `DOCUMENT_FIELDS` here must
name the same fields in the same order, which a test checks, together with equal answers from both
paths for VMs with every kind of value, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sqlalchemy import JSON, Text, and_, case, cast, func, literal_column, or_
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from controller.store.models import VirtualMachine

_C = VirtualMachine.__table__.c
Expr = ColumnElement[Any]


def _lit(value: str) -> Expr:
    assert "'" not in value
    return literal_column(f"'{value}'")


class _Sqlite:
    @staticmethod
    def timestamp(column: Expr) -> Expr:
        # stored as "YYYY-MM-DD HH:MM:SS.ffffff" (UTC); NULL stays NULL through substr and ||
        one: Expr = literal_column("1")
        ten: Expr = literal_column("10")
        twelve: Expr = literal_column("12")
        eight: Expr = literal_column("8")
        return (func.substr(column, one, ten).op("||")(_lit("T")).op("||")(func.substr(column, twelve, eight))
                .op("||")(_lit("Z")))

    @staticmethod
    def boolean(condition: Expr) -> Expr:
        return func.json(case((condition.is_(None), _lit("null")), (condition, _lit("true")), else_=_lit("false")))

    @staticmethod
    def json_or(column: Expr, empty: str) -> Expr:
        return func.json(case((or_(column.is_(None), column == _lit("null")), _lit(empty)), else_=column))

    @staticmethod
    def template() -> Expr:
        return case((_C.template_vmid.is_not(None), _C.template_vmid), else_=_C.template_name)

    @staticmethod
    def cloud_init() -> Expr:
        spec, password = _C.cloud_init_spec, _C.cloud_init_password
        password_set = func.json(case((and_(password.is_not(None), password != _lit("")), _lit("true")),
                                      else_=_lit("false")))
        return func.json(case((or_(spec.is_(None), spec == _lit("null")), _lit("null")),
                              else_=func.json_set(spec, _lit("$.password_set"), password_set)))

    @staticmethod
    def document(pairs: list[Expr]) -> Expr:
        return func.json_object(*pairs)


class _Postgres:
    @staticmethod
    def timestamp(column: Expr) -> Expr:
        return func.to_char(column.op("AT TIME ZONE")(_lit("UTC")), _lit('YYYY-MM-DD"T"HH24:MI:SS"Z"'))

    @staticmethod
    def boolean(condition: Expr) -> Expr:
        return condition

    @staticmethod
    def json_or(column: Expr, empty: str) -> Expr:
        return case((or_(column.is_(None), cast(column, Text) == _lit("null")), literal_column(f"'{empty}'::json")),
                    else_=column)

    @staticmethod
    def template() -> Expr:
        return func.coalesce(func.to_json(_C.template_vmid), func.to_json(_C.template_name))

    @staticmethod
    def cloud_init() -> Expr:
        spec, password = _C.cloud_init_spec, _C.cloud_init_password
        password_set = func.jsonb_build_object(_lit("password_set"),
                                               func.coalesce(password, _lit("")) != _lit(""))
        shown = cast(cast(spec, JSONB).op("||")(password_set), JSON)
        return case((or_(spec.is_(None), cast(spec, Text) == _lit("null")), literal_column("NULL::json")),
                    else_=shown)

    @staticmethod
    def document(pairs: list[Expr]) -> Expr:
        return cast(func.json_build_object(*pairs), Text)


Dialect = type[_Sqlite] | type[_Postgres]


def _fields(d: Dialect) -> list[tuple[str, Expr]]:
    plain: Callable[[str], Expr] = lambda name: _C[name]  # noqa: E731
    return [
        ("id", plain("id")),
        ("vmid", plain("vmid")),
        ("name", plain("name")),
        ("status", plain("status")),
        ("cpu_cores", plain("cpu_cores")),
        ("memory_mb", plain("memory_mb")),
        ("disk_gb", plain("disk_gb")),
        ("node", plain("node")),
        ("owner_id", plain("owner_id")),
        ("created_at", d.timestamp(_C.created_at)),
        ("updated_at", d.timestamp(_C.updated_at)),
        ("power_state", plain("power_state")),
        ("generation", plain("generation")),
        ("observed_generation", plain("observed_generation")),
        ("sync_status", plain("sync_status")),
        ("last_error", plain("last_error")),
        ("last_synced_at", d.timestamp(_C.last_synced_at)),
        ("restart_pending", d.boolean(_C.restart_requests > _C.restarts_done)),
        ("reboot_required", d.boolean(_C.reboot_required)),
        ("observed", d.json_or(_C.observed, "{}")),
        ("labels", d.json_or(_C.labels, "{}")),
        ("apply_set", plain("apply_set")),
        ("template", d.template()),
        ("clone_mode", plain("clone_mode")),
        ("cloud_init", d.cloud_init()),
        ("disks", d.json_or(_C.disks, "[]")),
        ("networks", d.json_or(_C.networks, "null")),
        ("tags", d.json_or(_C.tags, "[]")),
        ("pool", plain("pool")),
        ("start_on_boot", d.boolean(_C.start_on_boot)),
        ("agent", d.boolean(_C.agent)),
        ("description", plain("description")),
        ("ip_addresses", d.json_or(_C.ip_addresses, "[]")),
        ("current_task", plain("last_upid")),
        ("management", func.coalesce(func.nullif(_C.management, _lit("")), _lit("enforce"))),
        ("reboot_policy", func.coalesce(func.nullif(_C.reboot_policy, _lit("")), _lit("never"))),
        ("snapshot_schedule", d.json_or(_C.snapshot_schedule, "null")),
        ("drift", d.json_or(_C.drift, "[]")),
    ]


DOCUMENT_FIELDS: tuple[str, ...] = tuple(name for name, _expr in _fields(_Sqlite))


@functools.lru_cache(maxsize=4)
def select_list(dialect: str) -> tuple[Expr]:
    """What the hot reads select for `dialect` (sqlite or postgresql): one VM's answer as JSON text. The
    same tuple object every time (controller.vms caches its statements by it)."""
    d: Dialect = _Postgres if dialect == "postgresql" else _Sqlite
    pairs: list[Expr] = []
    for name, expr in _fields(d):
        pairs.extend((_lit(name), expr))
    return (d.document(pairs).label("document"),)
