"""The OpenAPI document is valid 3.1, covers every route and method, and matches what responders send."""

from __future__ import annotations

import re

import falcon.inspect
from openapi_spec_validator import validate

from api.schemas import VmOut


def test_document_is_valid_openapi_3_1(api):
    result = api.call("GET", "/api/openapi.json")
    assert result.status_code == 200
    validate(result.json)
    assert result.json["openapi"] == "3.1.0"


def test_every_route_and_method_is_documented(api, settings, app_factory):
    document = api.call("GET", "/api/openapi.json").json
    app = app_factory(settings)
    served = set()
    for route in falcon.inspect.inspect_routes(app):
        if not route.path.startswith("/api") and route.path != "/metrics":  # console pages are not the API
            continue
        for method in route.methods:
            if method.internal:  # falcon's own default responders (OPTIONS, 405s)
                continue
            served.add((route.path, method.method.lower()))
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert served == documented


def test_contract_paths_are_all_there(api):
    paths = api.call("GET", "/api/openapi.json").json["paths"]
    normalised = {re.sub(r"{\w+}", "{}", path) for path in paths}
    for path in ("/api/auth/login", "/api/auth/register", "/api/vms", "/api/vms/{}", "/api/vms/{}/action",
                 "/api/vms/{}/snapshots", "/api/vms/{}/snapshots/{}", "/api/vms/{}/firewall",
                 "/api/firewall/{}", "/api/stats/system", "/api/audit-logs", "/api/health"):
        assert path in normalised


def test_vm_schema_matches_what_the_api_returns(api, admin_token):
    vm = api.create_vm(admin_token)
    assert set(vm) == set(VmOut.model_fields)
    VmOut.model_validate(vm)
