"""The stored login (0600 in the user's config directory) and where server and token come from."""

from __future__ import annotations

import json
import os
import stat

import pytest

from api.client import credentials
from api.client.credentials import Credentials, resolve
from api.client.errors import UsageError


@pytest.fixture
def config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config"


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_saved_login_is_readable_by_the_user_only_even_with_a_permissive_umask(config_home):
    old = os.umask(0)
    try:
        path = credentials.save(Credentials("http://h:8080", "tok", "me@example.com"))
    finally:
        os.umask(old)
    assert path == config_home / "pvem" / "credentials.json"
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert json.loads(path.read_text()) == {"server": "http://h:8080", "token": "tok", "email": "me@example.com"}
    assert credentials.load() == Credentials("http://h:8080", "tok", "me@example.com")
    assert [entry.name for entry in path.parent.iterdir()] == ["credentials.json"]  # no temporary left behind


def test_saving_again_replaces_the_login_and_tightens_the_directory(config_home):
    (config_home / "pvem").mkdir(parents=True, mode=0o755)
    credentials.save(Credentials("http://a", "one"))
    path = credentials.save(Credentials("http://b", "two"))
    assert mode(path.parent) == 0o700 and mode(path) == 0o600
    assert credentials.load() == Credentials("http://b", "two")


def test_remove_forgets_the_login(config_home):
    assert credentials.remove() is False
    credentials.save(Credentials("http://a", "one"))
    assert credentials.remove() is True
    assert credentials.load() is None


def test_a_damaged_file_is_a_usage_error_naming_it(config_home):
    path = config_home / "pvem" / "credentials.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(UsageError) as caught:
        credentials.load()
    assert str(path) in caught.value.message and caught.value.exit_code == 2
    path.write_text('{"server": 1}')
    with pytest.raises(UsageError):
        credentials.load()


def test_config_dir_defaults_to_home_config_and_ignores_a_relative_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert credentials.config_dir({}) == tmp_path / ".config" / "pvem"
    assert credentials.config_dir({"XDG_CONFIG_HOME": "relative"}) == tmp_path / ".config" / "pvem"
    assert credentials.config_dir({"XDG_CONFIG_HOME": "/x"}).as_posix() == "/x/pvem"


STORED = Credentials("http://stored:8080/api/", "stored-token", "me@example.com")
ENV = {"PVEM_SERVER": "http://env:8080", "PVEM_TOKEN": "env-token"}


@pytest.mark.parametrize(("flag", "env", "stored", "server"), [
    ("http://flag:8080/", ENV, STORED, "http://flag:8080"),
    (None, ENV, STORED, "http://env:8080"),
    (None, {}, STORED, "http://stored:8080"),
    (None, {}, None, "http://127.0.0.1:8080"),
    (None, {"PVEM_SERVER": ""}, None, "http://127.0.0.1:8080"),
])
def test_server_comes_from_flag_then_env_then_stored_login_then_default(flag, env, stored, server):
    assert resolve(flag, None, env, stored).server == server


@pytest.mark.parametrize(("flag", "env", "token", "source"), [
    ("flag-token", ENV, "flag-token", "flag"),
    (None, ENV, "env-token", "environment"),
    (None, {}, "stored-token", "stored login"),
])
def test_token_comes_from_flag_then_env_then_stored_login(flag, env, token, source):
    target = resolve(None, flag, {k: v for k, v in env.items() if k != "PVEM_SERVER"}, STORED)
    assert (target.token, target.source) == (token, source)


def test_the_stored_token_is_never_sent_to_another_server():
    assert resolve("http://other:8080", None, {}, STORED).token is None
    assert resolve(None, None, {"PVEM_SERVER": "http://other"}, STORED).token is None
    assert resolve("stored:8080", None, {}, STORED).token == "stored-token"  # the same server, spelled differently
    assert resolve(None, None, {}, None).source == "none"
