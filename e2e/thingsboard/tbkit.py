"""Helpers shared by the tests: JWT claims, error bodies, users made through the client, TOTP
codes computed by oathtool, raw logins and Connectware calls."""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import subprocess
import time
import urllib.parse
import uuid
from dataclasses import dataclass

import pytest
import urllib3
from tb_ce_client import ThingsboardClient
from tb_ce_client.api.login_endpoint_api import LoginEndpointApi
from tb_ce_client.api_client import ApiClient
from tb_ce_client.configuration import Configuration
from tb_ce_client.exceptions import ApiException
from tb_ce_client.models import ActivateUserRequest, CustomerId, LoginRequest, TenantId, User

NULL_UUID = "13814000-1dd2-11b2-8080-808080808080"
DEFAULT_PASSWORD = "Sturdy-pass-42"

_http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(total=10.0))


def claims(jwt: str) -> dict:
    """The JWT payload, decoded without verification (as the client itself does)."""
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def unique_email(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(5)}@example.com"


def now_ms() -> int:
    return int(time.time() * 1000)


def error_body(error: ApiException) -> dict:
    try:
        return json.loads(error.body)
    except (TypeError, ValueError):
        pytest.fail(f"error body is not JSON: status {error.status}, body {error.body!r}")


def assert_tb_error(
    error: ApiException, status: int, code: int, message: str | None = None
) -> dict:
    """Checks a ThingsBoard error answer: HTTP status and the body {status,message,errorCode,timestamp}."""
    body = error_body(error)
    assert error.status == status, f"HTTP {error.status}, expected {status}; body {body}"
    assert body.get("status") == status, body
    assert body.get("errorCode") == code, body
    assert isinstance(body.get("message"), str), body
    if message is not None:
        assert body["message"] == message, body
    assert isinstance(body.get("timestamp"), int), body
    # Milliseconds, near now (seconds or a stale clock would be off by far more).
    assert abs(body["timestamp"] - now_ms()) < 120_000, body
    return body


def get_no_redirect(url: str, headers: dict | None = None) -> urllib3.BaseHTTPResponse:
    """A raw GET that does not follow redirects (the client's check_* methods follow them)."""
    return _http.request("GET", url, headers=headers or {}, redirect=False)


def query_param(url: str, name: str) -> str:
    values = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get(name)
    assert values and values[0], f"no {name} in {url}"
    return values[0]


def assert_redirect(link: str, expected_path: str, token_name: str, token: str) -> None:
    """GET `link` answers 303 to `expected_path?token_name=token` on the same server."""
    response = get_no_redirect(link)
    assert response.status == 303, (response.status, response.data[:500])
    location = response.headers.get("Location")
    assert location, dict(response.headers)
    target = urllib.parse.urljoin(link, location)
    origin = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(link))
    assert target == f"{origin}{expected_path}?{token_name}={token}", location


def random_tenant_id() -> TenantId:
    return TenantId(id=str(uuid.uuid4()), entity_type="TENANT")


def random_customer_id() -> CustomerId:
    return CustomerId(id=str(uuid.uuid4()), entity_type="CUSTOMER")


@dataclass
class Account:
    """A user made and activated through the API, with what it takes to log in."""

    user: User
    email: str
    password: str

    @property
    def id(self) -> str:
        return str(self.user.id.id)


def create_user(
    creator: ThingsboardClient,
    authority: str,
    email: str,
    tenant_id: TenantId | None = None,
    customer_id: CustomerId | None = None,
    send_activation_mail: bool = False,
) -> User:
    user = User(
        email=email,
        authority=authority,
        tenant_id=tenant_id,
        customer_id=customer_id,
        first_name="E2E",
        last_name=authority.title(),
    )
    return creator.save_user(
        user=user, send_activation_mail="true" if send_activation_mail else "false"
    )


def activate_with_link(base: str, creator: ThingsboardClient, user: User, password: str):
    """Activates `user` through the link its creator fetches (GET /api/user/{id}/activationLink)."""
    link = creator.get_activation_link(user_id=str(user.id.id)).strip()
    assert link.startswith(base + "/api/noauth/activate?activateToken="), link
    token = query_param(link, "activateToken")
    return ThingsboardClient(base).activate_user(
        activate_user_request=ActivateUserRequest(activate_token=token, password=password),
        send_activation_mail=False,
    )


def new_account(
    base: str,
    creator: ThingsboardClient,
    authority: str = "TENANT_ADMIN",
    tenant_id: TenantId | None = None,
    customer_id: CustomerId | None = None,
    password: str = DEFAULT_PASSWORD,
    prefix: str = "user",
) -> Account:
    """A new, activated user; a TENANT_ADMIN made by the sysadmin gets a tenant of its own."""
    if authority == "TENANT_ADMIN" and tenant_id is None and customer_id is None:
        tenant_id = random_tenant_id()
    email = unique_email(prefix)
    user = create_user(creator, authority, email, tenant_id=tenant_id, customer_id=customer_id)
    activate_with_link(base, creator, user, password)
    return Account(user=user, email=email, password=password)


# --------------------------------------------------------------------------------------------
# Two-factor authentication

TOTP_STEP_S = 30


def totp(secret: str, at: float | None = None) -> str:
    """The 6-digit TOTP code (SHA1, 30 s) of the base32 `secret` at Unix time `at` (now by
    default), computed by the real `oathtool` (Debian package oathtool), not by our own code."""
    if shutil.which("oathtool") is None:
        pytest.fail("oathtool is not installed (apt-get install oathtool)")
    moment = time.time() if at is None else at
    now = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(moment))
    result = subprocess.run(
        ["oathtool", "--totp", "-b", secret, "--now", now],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 0, f"oathtool failed: {result.stderr.strip()}"
    code = result.stdout.strip()
    assert re.fullmatch(r"\d{6}", code), f"oathtool printed {result.stdout!r}"
    return code


def totp_step(at: float | None = None) -> int:
    """The TOTP step (30 s period since the epoch) of Unix time `at`, now by default."""
    return int((time.time() if at is None else at) // TOTP_STEP_S)


def totp_now(secret: str) -> tuple[str, int]:
    """The current code of `secret` and the step it belongs to (one reading of the clock)."""
    at = time.time()
    return totp(secret, at), totp_step(at)


def wait_for_step_after(step: int) -> None:
    """Sleeps until the TOTP step after `step` has begun (at most one step, 30 s): a code is
    accepted once, so a login after an enrolment (or after another login) needs a later step."""
    remaining = (step + 1) * TOTP_STEP_S - time.time()
    assert remaining <= TOTP_STEP_S, f"step {step} is in the future"
    # A little past the boundary: the server reads the same clock.
    while totp_step() <= step:
        time.sleep(max(0.05, (step + 1) * TOTP_STEP_S - time.time() + 0.1))


def otpauth_secret(uri: str) -> str:
    """The base32 `secret` of an otpauth:// URI."""
    assert uri.startswith("otpauth://totp/"), uri
    secret = query_param(uri, "secret")
    assert re.fullmatch(r"[A-Z2-7]+=*", secret), uri
    return secret


def tb_raw_login(base: str, username: str, password: str) -> dict:
    """POST /api/auth/login through the client, read raw: with 2FA the answer has no
    refreshToken, which the client's LoginResponse model (and ThingsboardClient) refuses."""
    api = LoginEndpointApi(ApiClient(Configuration(host=base)))
    request = LoginRequest(username=username, password=password)
    response = api.login_without_preload_content(request)
    assert response.status == 200, (response.status, response.data[:500])
    return json.loads(response.data)


def raw_json(response) -> dict | list | None:
    """The JSON body of a *_without_preload_content answer, which must be 200."""
    assert response.status == 200, (response.status, response.data[:500])
    return json.loads(response.data) if response.data else None


@dataclass
class CwResponse:
    status: int
    body: dict | list | None
    headers: dict


def connectware(
    base: str, method: str, path: str, body: dict | None = None, token: str | None = None
) -> CwResponse:
    """One raw call of the Connectware dialect (JSON in and out, `Authorization: Bearer`)."""
    headers = {}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    response = _http.request(method, base + path, body=data, headers=headers, redirect=False)
    text = response.data.decode("utf-8", "replace")
    try:
        parsed = json.loads(text) if text.strip() else None
    except ValueError:
        pytest.fail(f"{method} {path}: not JSON: status {response.status}, {text[:500]!r}")
    return CwResponse(response.status, parsed, dict(response.headers))


def cw_ok(response: CwResponse, status: int = 200):
    assert response.status == status, (response.status, response.body)
    return response.body


def assert_cw_error(response: CwResponse, status: int, message: str | None = None) -> dict:
    """Checks a Connectware error answer: {statusCode, error, message[, field]}."""
    body = response.body
    assert response.status == status, (response.status, body)
    assert isinstance(body, dict) and body.get("statusCode") == status, body
    assert isinstance(body.get("message"), str), body
    if message is not None:
        assert body["message"] == message, body
    return body


def cw_token(base: str, username: str, password: str) -> str:
    """A Connectware token of a user without MFA (POST /api/login)."""
    login = {"username": username, "password": password}
    body = cw_ok(connectware(base, "POST", "/api/login", login))
    assert body["needsMfa"] is False and body["token"], body
    return body["token"]
