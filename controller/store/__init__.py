"""The desired-state store: the only package that imports SQLAlchemy."""

from controller.store.db import Store

__all__ = ["Store"]
