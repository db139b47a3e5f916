"""A client generated from /api/openapi.json with openapi-python-client type-checks (mypy --strict) a
create/list/action scenario and runs it against the app. Skipped when the generator is not installed."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def _generator() -> str | None:
    found = BIN / "openapi-python-client"
    return str(found) if found.exists() else shutil.which("openapi-python-client")


@pytest.fixture
def generated(api, tmp_path: Path) -> Path:
    generator = _generator()
    if generator is None:
        pytest.skip("openapi-python-client is not installed (it is in the test extra)")
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(api.call("GET", "/api/openapi.json").json))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run([generator, "generate", "--path", str(spec), "--output-path",
                             str(tmp_path / "pvem_client"), "--meta", "none"],
                            capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert (tmp_path / "pvem_client" / "__init__.py").exists(), result.stdout + result.stderr
    shutil.copy(HERE / "openapi_client_scenario.py", tmp_path / "scenario.py")
    return tmp_path


def test_generated_client_type_checks_and_runs_a_create_list_action_scenario(api, admin_token, generated):
    mypy = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
                           "--no-incremental", "--cache-dir", os.devnull, "scenario.py"],
                          capture_output=True, text=True, timeout=300, cwd=generated,
                          env={**os.environ, "MYPYPATH": str(generated)})
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr

    import httpx

    sys.path.insert(0, str(generated))
    try:
        client_module = importlib.import_module("pvem_client")
        scenario = importlib.import_module("scenario")
        client = client_module.AuthenticatedClient(
            base_url="http://pvem.test", token=admin_token,
            httpx_args={"transport": httpx.WSGITransport(app=api.client.app)})
        assert scenario.scenario(client) == ["gen-1", "gen-2"]
    finally:
        sys.path.remove(str(generated))
        for name in [name for name in sys.modules if name == "scenario" or name.startswith("pvem_client")]:
            del sys.modules[name]
