"""JWTs: HS256 with sub/iat/exp/jti/iss keyed by the UTF-8 bytes of auth.jwt_secret; anything else is a 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from controller.store.models import User
from tests.api.helpers import assert_error
from tests.conftest import ADMIN, JWT_SECRET

KEY = JWT_SECRET.encode("utf-8")
PROTECTED = "/api/vms"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def handmade(header: dict, claims: dict, signature: bytes | None = None, key: bytes = KEY) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if signature is None:
        signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@pytest.fixture
def admin_id(api, admin_token):
    return jwt.decode(admin_token, KEY, algorithms=["HS256"], options={"verify_iss": False})["sub"]


def claims_for(subject: str, **overrides) -> dict:
    now = int(time.time())
    claims = {"sub": subject, "iat": now, "exp": now + 600, "jti": str(uuid.uuid4()), "iss": "pvem"}
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def assert_rejected(api, token: str | None = None, header: str | None = None) -> dict:
    headers = {"Authorization": header} if header is not None else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    result = api.call("GET", PROTECTED, headers=headers)
    body = assert_error(result, 401)
    assert "bearer" in result.headers.get("www-authenticate", "").lower()
    return body


def test_token_is_hs256_with_required_claims(api, admin_token):
    assert jwt.get_unverified_header(admin_token)["alg"] == "HS256"
    claims = jwt.decode(admin_token, KEY, algorithms=["HS256"], issuer="pvem")
    assert {"sub", "iat", "exp", "jti", "iss"} <= set(claims)
    assert claims["sub"] == api.login(*ADMIN).json["user"]["id"]
    assert claims["iss"] == "pvem"
    uuid.UUID(str(claims["jti"]))


def test_token_lifetime_follows_token_ttl_minutes(api_with):
    client = api_with(auth={"token_ttl_minutes": 7})
    token = client.token_for(*ADMIN)
    claims = jwt.decode(token, KEY, algorithms=["HS256"], issuer="pvem")
    assert claims["exp"] - claims["iat"] == 7 * 60
    assert abs(claims["iat"] - time.time()) < 60


def test_token_issuer_follows_auth_issuer(api_with):
    client = api_with(auth={"issuer": "pvem-test"})
    token = client.token_for(*ADMIN)
    assert jwt.decode(token, KEY, algorithms=["HS256"], issuer="pvem-test")["iss"] == "pvem-test"


def test_each_token_has_a_fresh_jti(api):
    first = jwt.decode(api.token_for(*ADMIN), KEY, algorithms=["HS256"], issuer="pvem")
    second = jwt.decode(api.token_for(*ADMIN), KEY, algorithms=["HS256"], issuer="pvem")
    assert first["jti"] != second["jti"]


def test_a_token_minted_elsewhere_with_the_secret_is_accepted(api, admin_id):
    token = jwt.encode(claims_for(admin_id), KEY, algorithm="HS256")
    assert api.call("GET", PROTECTED, token).status_code == 200


def test_expired_token_is_401(api, admin_id):
    now = int(time.time())
    token = jwt.encode(claims_for(admin_id, iat=now - 7200, exp=now - 3600), KEY, algorithm="HS256")
    assert_rejected(api, token)


def test_a_token_that_worked_is_refused_once_it_expires(api, admin_id):
    now = time.time()
    token = jwt.encode(claims_for(admin_id, iat=now - 60, exp=now + 1.5), KEY, algorithm="HS256")
    assert api.call("GET", PROTECTED, token).status_code == 200  # verified (and remembered) while valid
    time.sleep(max(0.0, now + 1.6 - time.time()))
    assert_rejected(api, token)
    assert "expired" in api.call("GET", PROTECTED, token).json["error"]


def test_forged_signature_is_401(api, admin_id):
    token = jwt.encode(claims_for(admin_id), b"some-other-secret-0123456789-abcdef", algorithm="HS256")
    assert_rejected(api, token)


def test_tampered_payload_is_401(api, admin_token):
    header, _payload, signature = admin_token.split(".")
    claims = jwt.decode(admin_token, KEY, algorithms=["HS256"], issuer="pvem")
    claims["sub"] = str(uuid.uuid4())
    assert_rejected(api, f"{header}.{b64(json.dumps(claims).encode())}.{signature}")


@pytest.mark.parametrize("signature", [b"", b"garbage"])
def test_alg_none_is_401(api, admin_id, signature):
    token = handmade({"alg": "none", "typ": "JWT"}, claims_for(admin_id), signature=signature)
    assert_rejected(api, token)


def test_alg_none_via_pyjwt_is_401(api, admin_id):
    token = jwt.encode(claims_for(admin_id), None, algorithm="none")
    assert_rejected(api, token)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_hmac_algorithms_with_the_right_secret_are_401(api, admin_id, algorithm):
    token = jwt.encode(claims_for(admin_id), KEY, algorithm=algorithm)
    assert_rejected(api, token)


def test_rs256_token_is_401(api, admin_id):
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims_for(admin_id), private_key, algorithm="RS256")
    assert_rejected(api, token)


def test_rs256_header_with_hmac_signature_is_401(api, admin_id):
    """Algorithm confusion: an RS256 header over an HMAC-SHA256 signature made with the secret."""
    token = handmade({"alg": "RS256", "typ": "JWT"}, claims_for(admin_id))
    assert_rejected(api, token)


@pytest.mark.parametrize("missing", ["sub", "iat", "exp", "jti", "iss"])
def test_token_missing_a_claim_is_401(api, admin_id, missing):
    token = jwt.encode(claims_for(admin_id, **{missing: None}), KEY, algorithm="HS256")
    assert_rejected(api, token)


def test_token_with_wrong_issuer_is_401(api, admin_id):
    token = jwt.encode(claims_for(admin_id, iss="someone-else"), KEY, algorithm="HS256")
    assert_rejected(api, token)


def test_token_for_unknown_subject_is_401(api):
    token = jwt.encode(claims_for(str(uuid.uuid4())), KEY, algorithm="HS256")
    assert_rejected(api, token)


@pytest.mark.parametrize("token", ["abc", "a.b.c", "a.b", "....", "eyJhbGciOiJIUzI1NiJ9.e30.", "Bearer x"])
def test_malformed_token_is_401(api, token):
    assert_rejected(api, token)


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer ", "Basic YWRtaW46YWRtaW4xMjM=", "Token abc",
                                    "garbage", "Bearer \u00e9\u00e9"])
def test_missing_or_garbage_authorization_header_is_401(api, header):
    assert_rejected(api, header=header)


def test_no_authorization_header_is_401(api):
    assert_rejected(api)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/vms"), ("POST", "/api/vms"), ("GET", "/api/vms/x"), ("PUT", "/api/vms/x"),
    ("DELETE", "/api/vms/x"), ("POST", "/api/vms/x/action"), ("GET", "/api/vms/x/snapshots"),
    ("POST", "/api/vms/x/snapshots"), ("DELETE", "/api/vms/x/snapshots/y"),
    ("POST", "/api/vms/x/snapshots/y/rollback"), ("GET", "/api/vms/x/firewall"),
    ("POST", "/api/vms/x/firewall"), ("PUT", "/api/firewall/x"), ("DELETE", "/api/firewall/x"),
    ("GET", "/api/stats/system"), ("GET", "/api/audit-logs"),
])
def test_every_protected_endpoint_needs_a_token(api, method, path):
    assert_error(api.call(method, path, json={}), 401)


def test_token_of_a_deleted_user_is_401(api, store):
    api.register("erin")
    token = api.token_for("erin@example.com", "password123")
    assert api.call("GET", PROTECTED, token).status_code == 200
    with store.write() as session:
        session.delete(session.query(User).filter_by(username="erin").one())
    assert_rejected(api, token)


def test_token_signed_with_the_secret_as_other_encoding_is_401(api, admin_id):
    """The key is exactly the UTF-8 bytes of the secret, not e.g. a hash or another encoding of it."""
    for key in (hashlib.sha256(KEY).digest(), JWT_SECRET.encode("utf-16"), KEY[:-1]):
        token = jwt.encode(claims_for(admin_id), key, algorithm="HS256")
        assert_rejected(api, token)
