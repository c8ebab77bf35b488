"""Change password, password policy, lockout, reset by mail."""

import pytest
from tb_ce_client import ThingsboardClient
from tb_ce_client.exceptions import BadRequestException, UnauthorizedException
from tb_ce_client.models import (
    ChangePasswordRequest,
    RefreshTokenRequest,
    ResetPasswordEmailRequest,
    ResetPasswordRequest,
)

from tbkit import (
    assert_redirect,
    assert_tb_error,
    new_account,
    query_param,
    unique_email,
)


def test_change_password(server):
    admin = server.admin()
    account = new_account(server.base, admin, prefix="change")
    client = server.login(account.email, account.password)
    old_token, old_refresh = client.get_token(), client.get_refresh_token()

    pair = client.change_password(
        ChangePasswordRequest(current_password=account.password, new_password="Changed-pass-2")
    )
    assert pair.token and pair.refresh_token

    with pytest.raises(UnauthorizedException) as outdated:
        ThingsboardClient(server.base, token=old_token).get_user()
    assert_tb_error(outdated.value, 401, 11, "Token has expired")
    with pytest.raises(UnauthorizedException) as outdated_refresh:
        server.anonymous().refresh_token(RefreshTokenRequest(refresh_token=old_refresh))
    assert_tb_error(outdated_refresh.value, 401, 10)

    renewed = ThingsboardClient(server.base, token=pair.token, refresh_token=pair.refresh_token)
    assert renewed.get_user().email == account.email

    assert server.login(account.email, "Changed-pass-2").get_user().email == account.email
    with pytest.raises(UnauthorizedException) as old_password:
        server.login(account.email, account.password)
    assert_tb_error(old_password.value, 401, 10, "Invalid username or password")

    with pytest.raises(BadRequestException) as mismatch:
        renewed.change_password(
            ChangePasswordRequest(current_password="not-the-current", new_password="Other-pass-3")
        )
    assert_tb_error(mismatch.value, 400, 31, "Current password doesn't match!")

    with pytest.raises(BadRequestException) as same:
        renewed.change_password(
            ChangePasswordRequest(current_password="Changed-pass-2", new_password="Changed-pass-2")
        )
    assert_tb_error(same.value, 400, 31, "New password should be different from existing!")


def test_password_policy(make_server):
    srv = make_server()
    policy = srv.anonymous().get_user_password_policy()
    assert policy.minimum_length == 5  # Gatehouse's default

    admin = srv.admin()
    account = new_account(srv.base, admin, password="Before-policy-1", prefix="policy")

    settings = admin.get_security_settings()
    settings.password_policy.minimum_length = 12
    settings.password_policy.minimum_digits = 2
    saved = admin.save_security_settings(settings)
    assert saved.password_policy.minimum_length == 12
    assert saved.password_policy.minimum_digits == 2
    assert admin.get_security_settings().password_policy.minimum_length == 12

    published = srv.anonymous().get_user_password_policy()
    assert published.minimum_length == 12
    assert published.minimum_digits == 2

    client = srv.login(account.email, account.password)
    with pytest.raises(BadRequestException) as weak:
        client.change_password(
            ChangePasswordRequest(current_password=account.password, new_password="weak")
        )
    body = assert_tb_error(weak.value, 400, 31)
    assert set(body["message"].split("\n")) == {
        "Password must be 12 or more characters in length.",
        "Password must contain 2 or more digit characters.",
    }, body

    # Refused means unchanged; a password that meets the policy is taken.
    assert srv.login(account.email, account.password).get_user().email == account.email
    pair = client.change_password(
        ChangePasswordRequest(current_password=account.password, new_password="Long-enough-pass-42")
    )
    assert pair.token
    assert srv.login(account.email, "Long-enough-pass-42").get_user().email == account.email


def test_lockout_after_failed_logins(make_server):
    srv = make_server()
    admin = srv.admin()
    notify = unique_email("security-officer")
    settings = admin.get_security_settings()
    settings.max_failed_login_attempts = 3
    settings.user_lockout_notification_email = notify
    saved = admin.save_security_settings(settings)
    assert saved.max_failed_login_attempts == 3
    assert saved.user_lockout_notification_email == notify

    account = new_account(srv.base, admin, prefix="lockout")

    def failed_login(password: str) -> str:
        with pytest.raises(UnauthorizedException) as refused:
            srv.login(account.email, password)
        return assert_tb_error(refused.value, 401, 10)["message"]

    # A successful login resets the count.
    assert failed_login("wrong-1") == "Invalid username or password"
    assert failed_login("wrong-2") == "Invalid username or password"
    assert srv.login(account.email, account.password).get_user().email == account.email

    for attempt in range(3):
        assert failed_login(f"wrong-{attempt}") == "Invalid username or password"
    assert failed_login("wrong-4") == "User account is locked due to security policy"
    assert failed_login(account.password) == "User account is not active"

    mail = srv.mailbox.wait_for(notify)
    assert account.email in mail.text, mail.text

    # The sysadmin re-enables the account.
    admin.set_user_credentials_enabled(user_id=account.id, user_credentials_enabled="true")
    assert srv.login(account.email, account.password).get_user().email == account.email


def test_reset_password_by_mail(server):
    admin = server.admin()
    account = new_account(server.base, admin, prefix="reset")
    before = server.login(account.email, account.password)
    old_token, old_refresh = before.get_token(), before.get_refresh_token()

    anonymous = server.anonymous()
    nobody = unique_email("nobody")
    anonymous.request_reset_password_by_email(ResetPasswordEmailRequest(email=nobody))
    anonymous.request_reset_password_by_email(ResetPasswordEmailRequest(email=account.email))

    mail = server.mailbox.wait_for(account.email, contains="/api/noauth/resetPassword?resetToken=")
    link = mail.link_containing("/api/noauth/resetPassword?resetToken=")
    assert link.startswith(server.base + "/api/noauth/resetPassword?resetToken="), link
    token = query_param(link, "resetToken")
    assert_redirect(link, "/login/resetPassword", "resetToken", token)

    result = anonymous.reset_password(ResetPasswordRequest(reset_token=token, password="After-reset-7"))
    assert result is None

    with pytest.raises(UnauthorizedException) as outdated:
        ThingsboardClient(server.base, token=old_token).get_user()
    assert_tb_error(outdated.value, 401, 11, "Token has expired")
    with pytest.raises(UnauthorizedException) as outdated_refresh:
        anonymous.refresh_token(RefreshTokenRequest(refresh_token=old_refresh))
    assert_tb_error(outdated_refresh.value, 401, 10)

    assert server.login(account.email, "After-reset-7").get_user().email == account.email
    with pytest.raises(UnauthorizedException) as old_password:
        server.login(account.email, account.password)
    assert_tb_error(old_password.value, 401, 10, "Invalid username or password")

    with pytest.raises(BadRequestException) as reused:
        anonymous.reset_password(ResetPasswordRequest(reset_token=token, password="Again-reset-8"))
    assert_tb_error(reused.value, 400, 31, "Invalid reset token!")
    assert server.login(account.email, "After-reset-7").get_user().email == account.email

    # No mail went to the unknown address.
    assert not [m for m in server.mailbox.all() if nobody in m.recipients]
