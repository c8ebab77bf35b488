"""Login, JWT claims, refresh (by the client itself and explicit), logout."""

import time
import uuid

import pytest
from tb_ce_client import ThingsboardClient
from tb_ce_client.exceptions import UnauthorizedException
from tb_ce_client.models import LoginRequest, RefreshTokenRequest

from tbkit import NULL_UUID, assert_tb_error, claims, new_account


def test_admin_login_claims_and_current_user(server):
    admin = server.admin()
    token = admin.get_token()
    c = claims(token)

    assert c["scopes"] == ["SYS_ADMIN"]
    assert c["sub"] == "admin"
    uuid.UUID(c["userId"])
    uuid.UUID(c["sessionId"])
    assert c["tenantId"] == NULL_UUID
    assert c["customerId"] == NULL_UUID
    assert c["enabled"] is True
    assert c["isPublic"] is False
    assert c["iss"] == "thingsboard.io"
    assert isinstance(c["iat"], int) and isinstance(c["exp"], int)
    assert abs(c["iat"] - time.time()) < 120
    assert c["exp"] - c["iat"] == 9000  # the default access-token lifetime

    refresh = claims(admin.get_refresh_token())
    assert refresh["scopes"] == ["REFRESH_TOKEN"]
    assert refresh["userId"] == c["userId"]
    assert refresh["sessionId"] == c["sessionId"]
    assert refresh["exp"] - refresh["iat"] == 604800

    me = admin.get_user()
    assert me.authority == "SYS_ADMIN"
    assert me.id.entity_type == "USER"
    assert str(me.id.id) == c["userId"]
    assert me.email == "admin"
    assert me.name == "admin"
    assert str(me.tenant_id.id) == NULL_UUID
    assert isinstance(me.created_time, int) and me.created_time > 0


def test_wrong_password_and_unknown_user_are_refused(server):
    with pytest.raises(UnauthorizedException) as wrong:
        ThingsboardClient(server.base, username="admin", password="not-the-password")
    body = assert_tb_error(wrong.value, 401, 10, "Invalid username or password")
    assert set(body) >= {"status", "message", "errorCode", "timestamp"}

    with pytest.raises(UnauthorizedException) as unknown:
        ThingsboardClient(server.base, username="nobody@example.com", password="whatever1")
    assert_tb_error(unknown.value, 401, 10, "Invalid username or password")


def test_request_without_credentials_is_refused(server):
    with pytest.raises(UnauthorizedException) as anonymous:
        server.anonymous().get_user()
    assert_tb_error(anonymous.value, 401, 10, "Authentication failed")


def test_explicit_refresh_returns_a_working_pair(server):
    admin = server.admin()
    account = new_account(server.base, admin, prefix="refresh")
    client = server.login(account.email, account.password)
    old_refresh = client.get_refresh_token()

    pair = client.refresh_token(RefreshTokenRequest(refresh_token=old_refresh))
    assert pair.token and pair.refresh_token
    assert pair.refresh_token != old_refresh
    assert claims(pair.token)["userId"] == account.id
    assert claims(pair.token)["scopes"] == ["TENANT_ADMIN"]

    fresh = ThingsboardClient(server.base, token=pair.token, refresh_token=pair.refresh_token)
    assert fresh.get_user().email == account.email

    # The new refresh token works in turn (and rotates again).
    again = server.anonymous().refresh_token(RefreshTokenRequest(refresh_token=pair.refresh_token))
    assert ThingsboardClient(server.base, token=again.token).get_user().email == account.email

    # An access token is no refresh token.
    with pytest.raises(UnauthorizedException) as wrong_kind:
        server.anonymous().refresh_token(RefreshTokenRequest(refresh_token=again.token))
    assert_tb_error(wrong_kind.value, 401, 10, "Invalid refresh token")


def test_client_refreshes_expiring_tokens_by_itself(make_server):
    srv = make_server(
        GATEHOUSE_AUTH__TOKEN_PAIR__ACCESS_TOKEN_SECONDS=2,
        GATEHOUSE_AUTH__TOKEN_PAIR__REFRESH_TOKEN_SECONDS=600,
    )
    login = srv.anonymous().login(LoginRequest(username="admin", password=srv.admin_password))
    assert claims(login.token)["exp"] - claims(login.token)["iat"] == 2
    assert claims(login.refresh_token)["exp"] - claims(login.refresh_token)["iat"] == 600

    # Built from tokens only, the client has no password to fall back on: only refreshing
    # through /api/auth/token can keep it working past the 2-second lifetime.
    by_token = ThingsboardClient(srv.base, token=login.token, refresh_token=login.refresh_token)
    # Built with a password, as most users build it.
    by_password = srv.login("admin", srv.admin_password)

    seen = set()
    started = time.monotonic()
    calls = 0
    while time.monotonic() - started < 5.0:
        assert by_token.get_user().authority == "SYS_ADMIN"
        assert by_password.get_user().authority == "SYS_ADMIN"
        seen.add(by_token.get_token())
        calls += 1
        time.sleep(0.5)
    assert calls >= 5

    assert by_token.get_token() != login.token
    assert by_token.get_refresh_token() != login.refresh_token
    assert len(seen) > 1
    assert claims(by_token.get_token())["userId"] == claims(login.token)["userId"]

    # The first access token has expired by now.
    with pytest.raises(UnauthorizedException) as expired:
        ThingsboardClient(srv.base, token=login.token).get_user()
    assert_tb_error(expired.value, 401, 11, "Token has expired")

    # The first refresh token was used and rotated away: reusing it is refused…
    current_refresh = by_token.get_refresh_token()
    with pytest.raises(UnauthorizedException) as outdated:
        srv.anonymous().refresh_token(RefreshTokenRequest(refresh_token=login.refresh_token))
    assert_tb_error(outdated.value, 401, 10, "Token is outdated")

    # …and revokes the whole session, including the newest refresh token of it.
    with pytest.raises(UnauthorizedException) as revoked:
        srv.anonymous().refresh_token(RefreshTokenRequest(refresh_token=current_refresh))
    assert_tb_error(revoked.value, 401, 10)


def test_logout_ends_only_that_session(server):
    admin = server.admin()
    account = new_account(server.base, admin, prefix="logout")
    leaving = server.login(account.email, account.password)
    staying = server.login(account.email, account.password)
    old_token, old_refresh = leaving.get_token(), leaving.get_refresh_token()

    leaving.logout()

    with pytest.raises(UnauthorizedException) as after:
        ThingsboardClient(server.base, token=old_token).get_user()
    assert_tb_error(after.value, 401, 11, "Token has expired")

    with pytest.raises(UnauthorizedException) as refresh:
        server.anonymous().refresh_token(RefreshTokenRequest(refresh_token=old_refresh))
    assert_tb_error(refresh.value, 401, 10)

    # The user's other session is untouched.
    assert staying.get_user().email == account.email
