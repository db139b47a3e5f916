"""Settings: config.yaml defaults, PVEM_<SECTION>__<KEY> overrides, and loud failures on typos."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import ConfigError, load_settings, require_production_secret

ROOT = Path(__file__).resolve().parents[2]


def test_committed_config_yaml_loads_and_holds_no_secrets():
    settings = load_settings(ROOT / "config.yaml")
    assert settings.server.port == 8080
    assert settings.auth.jwt_secret is None and settings.proxmox.password is None
    assert settings.proxmox.token_value is None and settings.auth.admin_password is None


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    config = tmp_path / "c.yaml"
    config.write_text("database:\n  url: postgresql+psycopg://db.example/from-file\nproxmox:\n  storage: ceph\n")
    monkeypatch.setenv("PVEM_DATABASE__URL", "postgresql+psycopg://db.example/from-env")
    monkeypatch.setenv("PVEM_PROXMOX__VERIFY_SSL", "false")
    settings = load_settings(config)
    assert settings.database.url == "postgresql+psycopg://db.example/from-env"
    assert settings.proxmox.storage == "ceph"
    assert settings.proxmox.verify_ssl is False


def test_cli_client_variables_do_not_collide_with_sections(tmp_path, monkeypatch):
    monkeypatch.setenv("PVEM_SERVER", "http://127.0.0.1:8080")
    monkeypatch.setenv("PVEM_TOKEN", "abc")
    monkeypatch.chdir(tmp_path)
    assert load_settings().server.host == "127.0.0.1"


@pytest.mark.parametrize("text", [
    "server:\n  prot: 80\n",
    "proxmox:\n  vmid_min: 500\n  vmid_max: 400\n",
    "logging:\n  format: xml\n",
    "nonsense: 1\n",
])
def test_mistakes_in_the_file_are_refused(tmp_path, text):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError):
        load_settings(config)


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.yaml")


@pytest.mark.parametrize(("secret", "ok"), [(None, False), ("x" * 31, False), ("x" * 32, True)])
def test_production_needs_a_32_byte_jwt_secret(tmp_path, monkeypatch, secret, ok):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(auth={"jwt_secret": secret})
    if ok:
        require_production_secret(settings)
    else:
        with pytest.raises(ConfigError, match="jwt_secret"):
            require_production_secret(settings)
