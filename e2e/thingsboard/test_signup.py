"""Self-service sign-up (T12–T21) through ThingsBoard's own cloud client, tb-paas-client.

A visitor signs up (a reCAPTCHA stand-in answers Google's siteverify), receives the
verification mail on the real SMTP server, follows its link, activates the account by the email
code, accepts the privacy policy, uses the API and finally deletes the account. tb-ce-client
does what the CE API covers (API keys, users, logins); tb-paas-client does the sign-up calls.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tb_ce_client import ThingsboardClient
from tb_ce_client.exceptions import (
    ForbiddenException,
    NotFoundException,
    UnauthorizedException,
)
from tb_ce_client.models import ApiKeyInfo, RefreshTokenRequest, UserId
from tb_paas_client import ThingsboardClient as CloudClient
from tb_paas_client.exceptions import BadRequestException as CloudBadRequest
from tb_paas_client.exceptions import ForbiddenException as CloudForbidden
from tb_paas_client.exceptions import NotFoundException as CloudNotFound
from tb_paas_client.exceptions import UnauthorizedException as CloudUnauthorized
from tb_paas_client.models import DeleteTenantRequest, SignUpRequest, SignUpResult

from tbkit import (
    NULL_UUID,
    activate_with_link,
    assert_redirect,
    assert_tb_error,
    claims,
    create_user,
    get_no_redirect,
    new_account,
    query_param,
    random_customer_id,
    unique_email,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ports import free_port  # noqa: E402

SITE_KEY = "e2e-site-key-" + secrets.token_hex(4)
SECRET_KEY = "e2e-secret-" + secrets.token_hex(8)
HUMAN = "human"  # the only CAPTCHA answer the stand-in accepts
PASSWORD = "Signed-up-pass-1"
VERIFY_PATH = "/signup/emailVerified"
LINK_PATH = "/api/noauth/activateEmail?emailCode="
PRIVACY_POLICY_PENDING = (
    "You must accept the privacy policy first (POST /api/signup/acceptPrivacyPolicy)"
)


# --------------------------------------------------------------------------------------------
# reCAPTCHA stand-in


@dataclass
class Siteverify:
    """A stand-in for Google's https://www.google.com/recaptcha/api/siteverify: a form POST of
    `secret`, `response` and `remoteip` answered with `{"success": …}`. Accepts the response
    `human` with the right secret; keeps every request it got."""

    port: int
    requests: list[dict[str, list[str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/recaptcha/api/siteverify"

    def seen(self) -> list[dict[str, list[str]]]:
        with self.lock:
            return list(self.requests)


def _handler(siteverify: Siteverify):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8", "replace")
            form = urllib.parse.parse_qs(raw, keep_blank_values=True)
            form["_path"] = [self.path]
            form["_content_type"] = [self.headers.get("Content-Type", "")]
            with siteverify.lock:
                siteverify.requests.append(form)
            if self.path != "/recaptcha/api/siteverify":
                self.send_error(404)
                return
            if form.get("secret") != [SECRET_KEY]:
                answer = {"success": False, "error-codes": ["invalid-input-secret"]}
            elif form.get("response") == [HUMAN]:
                answer = {
                    "success": True,
                    "challenge_ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "hostname": "127.0.0.1",
                }
            else:
                answer = {"success": False, "error-codes": ["invalid-input-response"]}
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
            pass

    return Handler


@pytest.fixture(scope="module")
def siteverify():
    stand_in = Siteverify(port=free_port())
    httpd = ThreadingHTTPServer(("127.0.0.1", stand_in.port), _handler(stand_in))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="siteverify", daemon=True)
    thread.start()
    yield stand_in
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


def signup_env(siteverify: Siteverify, **extra) -> dict:
    env = {
        "GATEHOUSE_SIGNUP__ENABLED": "true",
        "GATEHOUSE_SIGNUP__CAPTCHA__SITE_KEY": SITE_KEY,
        "GATEHOUSE_SIGNUP__CAPTCHA__SECRET_KEY": SECRET_KEY,
        "GATEHOUSE_SIGNUP__CAPTCHA__VERIFY_URL": siteverify.url,
        "GATEHOUSE_SIGNUP__CAPTCHA__VERSION": "v2",
    }
    env.update(extra)
    return env


def start_signup_server(make_server, siteverify: Siteverify, **extra):
    """A server of the test's own with sign-up on, configured through the environment."""
    srv = make_server(**signup_env(siteverify, **extra))
    # Every GATEHOUSE_SIGNUP__* variable must be taken as a setting (docs/configuration.md).
    ignored = [
        line
        for line in srv.read_log().splitlines()
        if "ignoring unknown environment variable" in line
    ]
    assert not ignored, "sign-up settings not read from the environment:\n" + "\n".join(ignored)
    return srv


@pytest.fixture
def signup_server(make_server, siteverify):
    return start_signup_server(make_server, siteverify)


# --------------------------------------------------------------------------------------------
# Helpers


def sign_up_request(
    email: str, password: str = PASSWORD, captcha: str = HUMAN, **fields: str
) -> SignUpRequest:
    values = {
        "EMAIL": email,
        "PASSWORD": password,
        "REPEAT_PASSWORD": password,
        "FIRST_NAME": "Sign",
        "LAST_NAME": "Upper",
    }
    values.update(fields)
    return SignUpRequest(fields=values, recaptcha_response=captcha)


def cloud(base: str, **auth) -> CloudClient:
    return CloudClient(base, **auth)


def verification_code(server, email: str) -> str:
    """The code of the next verification mail to `email`, after checking the mail and that its
    link leads (303, not followed) to the page that activates the account."""
    mail = server.mailbox.wait_for(email, contains=LINK_PATH)
    link = mail.link_containing(LINK_PATH)
    assert link.startswith(server.base + LINK_PATH), link
    code = query_param(link, "emailCode")
    assert code in mail.text.replace(link, ""), "the mail should also show the code itself"
    assert_redirect(link, VERIFY_PATH, "emailCode", code)
    return code


def login_refused(base: str, email: str, password: str) -> None:
    with pytest.raises(UnauthorizedException) as refused:
        ThingsboardClient(base, username=email, password=password)
    assert_tb_error(refused.value, 401, 10, "Invalid username or password")


def key_refused(base: str, value: str, message: str) -> None:
    with pytest.raises(UnauthorizedException) as refused:
        ThingsboardClient(base, api_key=value).get_user()
    assert_tb_error(refused.value, 401, 10, message)


def make_key(client: ThingsboardClient, user_id: str, description: str):
    return client.save_api_key(
        ApiKeyInfo(
            description=description,
            enabled=True,
            user_id=UserId(id=user_id, entity_type="USER"),
        )
    )


# --------------------------------------------------------------------------------------------
# Tests


def test_sign_up_verify_accept_use_and_delete(signup_server, siteverify):
    srv = signup_server
    email = unique_email("signup")
    anonymous = cloud(srv.base)

    # An account of another tenant, which the deletion must leave alone.
    bystander = new_account(srv.base, srv.admin(), prefix="bystander")

    result = anonymous.sign_up(
        sign_up_request(email, CITY="Kyiv", PHONE="+380441234567")
    )
    assert result == SignUpResult.SUCCESS

    # The stand-in was asked, with the secret, the answer and the visitor's address.
    asked = [r for r in siteverify.seen() if r.get("response") == [HUMAN]]
    assert asked, siteverify.seen()
    request = asked[-1]
    assert request["_path"] == ["/recaptcha/api/siteverify"]
    assert request["_content_type"][0].startswith("application/x-www-form-urlencoded"), request
    assert request["secret"] == [SECRET_KEY]
    assert request["remoteip"] == ["127.0.0.1"]

    # Not usable before the email is verified (ThingsBoard's answer for disabled credentials).
    with pytest.raises(UnauthorizedException) as inactive:
        ThingsboardClient(srv.base, username=email, password=PASSWORD)
    assert_tb_error(inactive.value, 401, 10, "User account is not active")

    code = verification_code(srv, email)

    pair = anonymous.activate_user_by_email_code(email_code=code)
    assert pair.token and pair.refresh_token
    first = claims(pair.token)
    assert first["scopes"] == ["TENANT_ADMIN"]
    assert first["sub"] == email
    assert first["tenantId"] != NULL_UUID
    assert first["customerId"] == NULL_UUID
    tenant_id = first["tenantId"]
    user_id = first["userId"]

    # The code worked once.
    with pytest.raises(CloudBadRequest) as used:
        anonymous.activate_user_by_email_code(email_code=code)
    assert_tb_error(used.value, 400, 31, "Invalid email verification code")
    used_link = get_no_redirect(f"{srv.base}{LINK_PATH}{urllib.parse.quote(code)}")
    assert used_link.status == 409, (used_link.status, used_link.data[:500])

    # Before the privacy policy is accepted: the account sees itself, nothing else.
    pending = cloud(srv.base, token=pair.token, refresh_token=pair.refresh_token)
    assert pending.privacy_policy_accepted() is False
    pending_ce = ThingsboardClient(srv.base, token=pair.token, refresh_token=pair.refresh_token)
    me = pending_ce.get_user()
    assert me.email == email
    assert me.authority == "TENANT_ADMIN"
    assert me.first_name == "Sign" and me.last_name == "Upper"
    assert me.phone == "+380441234567"
    assert me.additional_info["signUp"] == {"city": "Kyiv"}
    assert str(me.tenant_id.id) == tenant_id
    with pytest.raises(ForbiddenException) as forbidden:
        make_key(pending_ce, user_id, "too early")
    assert_tb_error(forbidden.value, 403, 20, PRIVACY_POLICY_PENDING)
    with pytest.raises(ForbiddenException) as forbidden:
        pending_ce.get_user_api_keys(user_id=user_id, page_size=10, page=0)
    assert_tb_error(forbidden.value, 403, 20, PRIVACY_POLICY_PENDING)

    accepted = pending.accept_privacy_policy()
    assert accepted.token and accepted.refresh_token
    assert accepted.token != pair.token
    assert claims(accepted.token)["userId"] == user_id
    assert claims(accepted.token)["scopes"] == ["TENANT_ADMIN"]

    # Switch to the new pair: its session replaced the activation's.
    owner = cloud(srv.base, token=accepted.token, refresh_token=accepted.refresh_token)
    owner_ce = ThingsboardClient(
        srv.base, token=accepted.token, refresh_token=accepted.refresh_token
    )
    assert owner.privacy_policy_accepted() is True
    # (As after a password change: the replaced session's token answers as an expired one.)
    with pytest.raises(UnauthorizedException) as replaced:
        pending_ce.get_user()
    assert_tb_error(replaced.value, 401, 11, "Token has expired")

    # The API now answers: API keys, …
    key = make_key(owner_ce, user_id, "signed-up key")
    assert key.value.startswith("tb_")
    listed = owner_ce.get_user_api_keys(user_id=user_id, page_size=10, page=0)
    assert [str(k.id.id) for k in listed.data] == [str(key.id.id)]
    assert listed.total_elements == 1
    assert ThingsboardClient(srv.base, api_key=key.value).get_user().email == email

    # … a customer user of the tenant, activated, with a key of its own …
    customer_email = unique_email("signup-customer")
    customer_id = random_customer_id()
    created = create_user(owner_ce, "CUSTOMER_USER", customer_email, customer_id=customer_id)
    assert str(created.tenant_id.id) == tenant_id
    assert str(created.customer_id.id) == str(customer_id.id)
    activate_with_link(srv.base, owner_ce, created, "Customer-pass-1")
    customer = ThingsboardClient(srv.base, username=customer_email, password="Customer-pass-1")
    assert customer.get_user().authority == "CUSTOMER_USER"
    assert cloud(srv.base, token=customer.get_token()).privacy_policy_accepted() is True
    customer_key = make_key(customer, str(created.id.id), "customer key")
    by_customer_key = ThingsboardClient(srv.base, api_key=customer_key.value)
    assert by_customer_key.get_user().email == customer_email

    # … and a login with the password chosen at sign-up.
    by_password = ThingsboardClient(srv.base, username=email, password=PASSWORD)
    assert by_password.get_user().email == email
    assert by_password.get_user_api_keys(user_id=user_id, page_size=10, page=0).total_elements == 1

    # The owner deletes the account, within the re-authentication window of its session.
    assert owner.delete_tenant_account(
        DeleteTenantRequest(reason="e2e", additional_notes="deleted by the end-to-end suite")
    ) is None

    # Gone: both users, their keys, their sessions.
    login_refused(srv.base, email, PASSWORD)
    login_refused(srv.base, customer_email, "Customer-pass-1")
    key_refused(srv.base, key.value, "Invalid username or password")
    key_refused(srv.base, customer_key.value, "Invalid username or password")
    for client in (owner_ce, by_password, customer):
        with pytest.raises(UnauthorizedException) as stale:
            ThingsboardClient(srv.base, token=client.get_token()).get_user()
        assert_tb_error(stale.value, 401, 11, "Token has expired")
        with pytest.raises(UnauthorizedException) as stale_refresh:
            srv.anonymous().refresh_token(
                RefreshTokenRequest(refresh_token=client.get_refresh_token())
            )
        assert_tb_error(stale_refresh.value, 401, 10)

    # The system administrator, and the other tenant, are untouched.
    admin = srv.admin()
    assert admin.get_user().authority == "SYS_ADMIN"
    for gone in (user_id, str(created.id.id)):
        with pytest.raises(NotFoundException) as missing:
            admin.get_user_by_id(user_id=gone)
        assert_tb_error(missing.value, 404, 32)
    assert admin.get_user_by_id(user_id=bystander.id).email == bystander.email
    assert srv.login(bystander.email, bystander.password).get_user().email == bystander.email

    # The address is free again: a new sign-up starts afresh, with a new code.
    assert anonymous.sign_up(sign_up_request(email)) == SignUpResult.SUCCESS
    assert verification_code(srv, email) != code


def test_sign_up_is_off_by_default(server):
    anonymous = cloud(server.base)
    with pytest.raises(CloudNotFound) as off:
        anonymous.sign_up(sign_up_request(unique_email("off")))
    assert_tb_error(off.value, 404, 32)
    with pytest.raises(CloudNotFound) as off:
        anonymous.get_recaptcha_params()
    assert_tb_error(off.value, 404, 32)
    with pytest.raises(CloudNotFound) as off:
        anonymous.activate_user_by_email_code(email_code="no-such-code")
    assert_tb_error(off.value, 404, 32)
    with pytest.raises(CloudNotFound) as off:
        anonymous.resend_email_activation(email=unique_email("off"))
    assert_tb_error(off.value, 404, 32)
    link = get_no_redirect(f"{server.base}{LINK_PATH}no-such-code")
    assert link.status == 404, (link.status, link.data[:500])

    # The /api/signup/* calls serve every account: the administrator never signed up, so it
    # was never asked to accept the policy.
    admin = server.admin()
    assert cloud(server.base, token=admin.get_token()).privacy_policy_accepted() is True
    # And it cannot delete itself this way.
    with pytest.raises(CloudForbidden) as refused:
        cloud(server.base, token=admin.get_token()).delete_tenant_account(
            DeleteTenantRequest(reason="e2e")
        )
    assert_tb_error(refused.value, 403, 20)
    assert server.admin().get_user().authority == "SYS_ADMIN"

    # Anonymous callers are refused by the /api/signup/* calls.
    with pytest.raises(CloudUnauthorized) as anonymous_call:
        anonymous.privacy_policy_accepted()
    assert_tb_error(anonymous_call.value, 401, 10)


def test_refused_captcha_answer(signup_server, siteverify):
    srv = signup_server
    anonymous = cloud(srv.base)
    email = unique_email("robot")
    before = len(siteverify.seen())
    with pytest.raises(CloudBadRequest) as refused:
        anonymous.sign_up(sign_up_request(email, captcha="robot"))
    assert_tb_error(refused.value, 400, 31)
    asked = siteverify.seen()[before:]
    assert [r.get("response") for r in asked] == [["robot"]], asked
    assert asked[0]["secret"] == [SECRET_KEY]

    # No answer at all is refused without asking.
    with pytest.raises(CloudBadRequest) as missing:
        anonymous.sign_up(SignUpRequest(fields={"EMAIL": email, "PASSWORD": PASSWORD}))
    assert_tb_error(missing.value, 400, 31)
    assert len(siteverify.seen()) == before + 1

    # Nothing was created: the same address signs up afresh (SUCCESS, not INACTIVE_USER_EXISTS).
    login_refused(srv.base, email, PASSWORD)
    assert anonymous.sign_up(sign_up_request(email)) == SignUpResult.SUCCESS
    assert verification_code(srv, email)


def test_wrong_secret_is_a_refusal(make_server, siteverify):
    srv = start_signup_server(
        make_server, siteverify, GATEHOUSE_SIGNUP__CAPTCHA__SECRET_KEY="not-the-secret"
    )
    with pytest.raises(CloudBadRequest) as refused:
        cloud(srv.base).sign_up(sign_up_request(unique_email("wrong-secret")))
    assert_tb_error(refused.value, 400, 31)
    assert siteverify.seen()[-1]["secret"] == ["not-the-secret"]


def test_second_sign_up_before_verification(signup_server):
    srv = signup_server
    anonymous = cloud(srv.base)
    email = unique_email("twice")

    first = anonymous.sign_up(sign_up_request(email, password="First-pass-1"))
    assert first == SignUpResult.SUCCESS
    first_code = verification_code(srv, email)
    again = anonymous.sign_up(sign_up_request(email, password="Second-pass-2", FIRST_NAME="Newer"))
    assert again == SignUpResult.INACTIVE_USER_EXISTS
    second_code = verification_code(srv, email)
    assert second_code != first_code

    # Only the newest mail's code works.
    stale = get_no_redirect(f"{srv.base}{LINK_PATH}{urllib.parse.quote(first_code)}")
    assert stale.status == 409, (stale.status, stale.data[:500])
    assert stale.data == b""
    with pytest.raises(CloudBadRequest) as refused:
        anonymous.activate_user_by_email_code(email_code=first_code)
    assert_tb_error(refused.value, 400, 31, "Invalid email verification code")

    pair = anonymous.activate_user_by_email_code(email_code=second_code)
    assert claims(pair.token)["sub"] == email
    assert ThingsboardClient(srv.base, token=pair.token).get_user().first_name == "Newer"

    # The newest sign-up's password is the account's.
    login_refused(srv.base, email, "First-pass-1")
    assert srv.login(email, "Second-pass-2").get_user().email == email
    with pytest.raises(CloudBadRequest) as used:
        anonymous.activate_user_by_email_code(email_code=first_code)
    assert_tb_error(used.value, 400, 31, "Invalid email verification code")

    # A sign-up of a verified address answers SUCCESS (nothing tells it exists), changes
    # nothing, and tells the owner by mail, without a code.
    third = anonymous.sign_up(sign_up_request(email, password="Third-pass-3"))
    assert third == SignUpResult.SUCCESS
    notice = srv.mailbox.wait_for(email)
    assert LINK_PATH not in notice.text, notice.text
    assert "already has an account" in notice.text, notice.text
    login_refused(srv.base, email, "Third-pass-3")
    assert srv.login(email, "Second-pass-2").get_user().email == email


def test_resend_email_activation(signup_server):
    srv = signup_server
    anonymous = cloud(srv.base)
    email = unique_email("resend")
    assert anonymous.sign_up(sign_up_request(email)) == SignUpResult.SUCCESS
    first_code = verification_code(srv, email)

    assert anonymous.resend_email_activation(email=email) is None
    resent_code = verification_code(srv, email)
    assert resent_code != first_code

    # Nothing tells whether an address signed up.
    assert anonymous.resend_email_activation(email=unique_email("nobody")) is None

    pair = anonymous.activate_user_by_email_code(email_code=resent_code)
    assert claims(pair.token)["sub"] == email
    # Every other code of the account is void once one is used.
    with pytest.raises(CloudBadRequest) as void:
        anonymous.activate_user_by_email_code(email_code=first_code)
    assert_tb_error(void.value, 400, 31, "Invalid email verification code")


def test_recaptcha_params_and_mobile_login(signup_server):
    anonymous = cloud(signup_server.base)
    params = anonymous.get_recaptcha_params()
    assert params.captcha_site_key == SITE_KEY
    assert params.captcha_version == "v2"
    assert params.captcha_action is None

    # No mobile application is configured: an unknown package is a bad request.
    with pytest.raises(CloudBadRequest) as unknown:
        anonymous.mobile_login(pkg_name="org.example.unknown", platform="ANDROID")
    assert_tb_error(unknown.value, 400, 31)


def test_deletion_needs_a_recent_login(make_server, siteverify):
    srv = start_signup_server(make_server, siteverify, GATEHOUSE_SIGNUP__REAUTHENTICATION_SECS="2")
    anonymous = cloud(srv.base)
    email = unique_email("reauth")
    assert anonymous.sign_up(sign_up_request(email)) == SignUpResult.SUCCESS
    pair = anonymous.activate_user_by_email_code(email_code=verification_code(srv, email))
    accepted = cloud(srv.base, token=pair.token).accept_privacy_policy()
    owner = cloud(srv.base, token=accepted.token, refresh_token=accepted.refresh_token)
    time.sleep(3)

    with pytest.raises(CloudForbidden) as stale:
        owner.delete_tenant_account(DeleteTenantRequest(reason="too late"))
    assert_tb_error(stale.value, 403, 20)
    assert ThingsboardClient(srv.base, username=email, password=PASSWORD).get_user().email == email

    # A fresh login re-authenticates.
    fresh = cloud(srv.base, username=email, password=PASSWORD)
    assert fresh.delete_tenant_account(DeleteTenantRequest(reason="e2e")) is None
    login_refused(srv.base, email, PASSWORD)
