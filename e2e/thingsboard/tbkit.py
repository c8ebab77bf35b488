"""Helpers shared by the tests: JWT claims, error bodies, users made through the client."""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.parse
import uuid
from dataclasses import dataclass

import pytest
import urllib3
from tb_ce_client import ThingsboardClient
from tb_ce_client.exceptions import ApiException
from tb_ce_client.models import ActivateUserRequest, CustomerId, TenantId, User

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
