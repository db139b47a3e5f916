"""The installed pvem version, for `pvem --version` and the OpenAPI document (import-light on purpose)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def pvem_version() -> str:
    try:
        return version("pvem")
    except PackageNotFoundError:
        return "0.0.0"
