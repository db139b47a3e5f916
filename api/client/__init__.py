"""The `pvem` client commands (login, apply, diff, get, describe, delete, export) over the REST API.

Import-light on purpose: nothing here imports falcon, SQLAlchemy or waitress, so `pvem get vms`
starts fast. `commands.run` is the entry point `api/cli.py` dispatches to.
"""
