"""Multi-factor authentication with real clients: ThingsBoard's 2FA through tb-ce-client,
Connectware's MFA over HTTP, and one set of factors shared by both dialects.

Every TOTP code comes from the real `oathtool` (tbkit.totp), never from Gatehouse's code. A code
is accepted once (its step must be later than the last accepted one), so a login that follows an
enrolment needs a later 30 s step: the tests of each dialect wait for it once (the real clock),
the cross-dialect test takes the next step's code ahead of time (the server allows one step of
clock skew), and backup codes serve where a further login would need yet another step.
"""

import base64
import re
import secrets

import pytest
from tb_ce_client import ThingsboardClient
from tb_ce_client.exceptions import BadRequestException, ForbiddenException
from tb_ce_client.models import (
    BackupCodeTwoFaAccountConfig,
    BackupCodeTwoFaProviderConfig,
    PlatformTwoFaSettings,
    TotpTwoFaAccountConfig,
    TotpTwoFaProviderConfig,
)

from tbkit import (
    TOTP_STEP_S,
    assert_cw_error,
    assert_tb_error,
    claims,
    connectware,
    cw_ok,
    cw_token,
    new_account,
    otpauth_secret,
    raw_json,
    tb_raw_login,
    totp,
    totp_now,
    totp_step,
    wait_for_step_after,
)

BACKUP_CODE = re.compile(r"[0-9a-f]{8}")
SESSION_READ = [{"resource": "/api/session", "operation": "read", "context": "http"}]
CW_PASSWORD = "Sturdy-pass-42"


def an_old_time() -> float:
    """Ten minutes ago, at the middle of a step: far outside the server's one step of skew."""
    return (totp_step() - 20) * TOTP_STEP_S + TOTP_STEP_S / 2


def cw_second_step(base: str, username: str, **proof: str):
    """A Connectware password login completed with `otp=` or `backupCode=` (the raw answer)."""
    challenge = cw_mfa_challenge(base, username, CW_PASSWORD)
    return connectware(
        base, "POST", "/api/mfa/login", {"username": username, "secret": challenge, **proof}
    )


def pre_verification_client(base: str, username: str, password: str) -> ThingsboardClient:
    """Logs in through /api/auth/login and checks the answer is a PRE_VERIFICATION_TOKEN."""
    pre = tb_raw_login(base, username, password)
    assert pre.get("scope") == "PRE_VERIFICATION_TOKEN", pre
    assert "refreshToken" not in pre, pre
    assert claims(pre["token"])["scopes"] == ["PRE_VERIFICATION_TOKEN"]
    return ThingsboardClient(base, token=pre["token"])


def assert_full_pair(pair, base: str, email: str, authority: str) -> ThingsboardClient:
    """A JwtPair of a completed 2FA login: both tokens, no scope, and they work."""
    assert pair.token and pair.refresh_token, pair
    assert pair.scope is None, pair
    assert claims(pair.token)["scopes"] == [authority]
    assert claims(pair.refresh_token)["scopes"] == ["REFRESH_TOKEN"]
    client = ThingsboardClient(base, token=pair.token, refresh_token=pair.refresh_token)
    me = client.get_user()
    assert me.email == email and me.authority == authority
    return client


def assert_code_refused(client: ThingsboardClient, provider: str, code: str) -> None:
    with pytest.raises(BadRequestException) as refused:
        client.check_two_fa_verification_code(provider_type=provider, verification_code=code)
    assert_tb_error(refused.value, 400, 31, "Verification code is incorrect")


def cw_create_user(base: str, admin_token: str, username: str) -> None:
    created = connectware(
        base,
        "POST",
        "/api/users",
        {"username": username, "password": CW_PASSWORD, "initialPermissions": SESSION_READ},
        token=admin_token,
    )
    assert cw_ok(created, 201)["username"] == username


def cw_enrol(base: str, token: str) -> tuple[str, int, list[str]]:
    """Enrols TOTP through /api/mfa/enable and /api/mfa/validate with an oathtool code;
    returns the secret, the step of the code used, and the backup codes."""
    enabled = cw_ok(connectware(base, "POST", "/api/mfa/enable", token=token))
    uri = enabled["uri"]
    assert uri.startswith("otpauth://totp/"), uri
    assert "algorithm=SHA1" in uri and "digits=6" in uri and "period=30" in uri, uri
    secret = otpauth_secret(uri)
    assert enabled["qrCode"].startswith("data:image/svg+xml;base64,"), enabled["qrCode"][:80]
    svg = base64.b64decode(enabled["qrCode"].split(",", 1)[1]).decode()
    assert "<svg" in svg, svg[:200]

    # A code of another time (ten minutes ago) is a wrong code.
    wrong = connectware(
        base, "POST", "/api/mfa/validate", {"otp": totp(secret, at=an_old_time())}, token=token
    )
    assert_cw_error(wrong, 401, "Invalid OTP")

    code, step = totp_now(secret)
    validated = cw_ok(connectware(base, "POST", "/api/mfa/validate", {"otp": code}, token=token))
    codes = validated["backupCodes"]
    assert len(codes) == 10 and len(set(codes)) == 10, codes
    assert all(BACKUP_CODE.fullmatch(c) for c in codes), codes
    return secret, step, codes


def cw_mfa_challenge(base: str, username: str, password: str) -> str:
    """POST /api/login of a user with MFA: no token, needsMfa and the secret of the MFA step."""
    login = {"username": username, "password": password}
    body = cw_ok(connectware(base, "POST", "/api/login", login))
    assert body["needsMfa"] is True, body
    assert body["permissions"] == [] and body["enforceMFAEnrollment"] is False, body
    assert "token" not in body and "expiresAt" not in body, body
    assert isinstance(body.get("secret"), str) and body["secret"], body
    return body["secret"]


def tb_enrol_totp(client: ThingsboardClient, issuer: str) -> tuple[str, int]:
    """Enrols TOTP through tb-ce-client with an oathtool code; returns the secret and the step."""
    cfg = client.generate_two_fa_account_config(provider_type="TOTP")
    assert isinstance(cfg, TotpTwoFaAccountConfig), cfg
    assert cfg.auth_url.startswith(f"otpauth://totp/{issuer}:"), cfg.auth_url
    assert f"issuer={issuer}" in cfg.auth_url, cfg.auth_url
    secret = otpauth_secret(cfg.auth_url)
    assert len(secret) == 32, secret  # 160 bits

    # A code of another time (ten minutes ago) is a wrong code.
    with pytest.raises(BadRequestException) as wrong:
        client.verify_and_save_two_fa_account_config(
            two_fa_account_config=cfg, verification_code=totp(secret, at=an_old_time())
        )
    assert_tb_error(wrong.value, 400, 31, "Verification code is incorrect")

    code, step = totp_now(secret)
    saved = client.verify_and_save_two_fa_account_config(
        two_fa_account_config=cfg, verification_code=code
    )
    assert set(saved.configs) == {"TOTP"}, saved
    return secret, step


# --------------------------------------------------------------------------------------------
# 1. ThingsBoard: TOTP and backup codes through tb-ce-client


def test_thingsboard_totp_and_backup_codes(make_server):
    srv = make_server()  # the platform 2FA settings are global
    admin = srv.admin()
    admin.save_platform_two_fa_settings(
        PlatformTwoFaSettings(
            providers=[
                TotpTwoFaProviderConfig(provider_type="TOTP", issuer_name="TB"),
                BackupCodeTwoFaProviderConfig(provider_type="BACKUP_CODE", codes_quantity=10),
            ],
            min_verification_code_send_period=30,
            total_allowed_time_for_verification=3600,
        )
    )
    account = new_account(srv.base, admin, prefix="totp")
    user = srv.login(account.email, account.password)

    secret, enrol_step = tb_enrol_totp(user, issuer="TB")

    backup = user.generate_two_fa_account_config(provider_type="BACKUP_CODE")
    assert isinstance(backup, BackupCodeTwoFaAccountConfig), backup
    assert len(backup.codes) == 10 and len(set(backup.codes)) == 10, backup.codes
    assert all(BACKUP_CODE.fullmatch(c) for c in backup.codes), backup.codes
    saved = raw_json(
        user.verify_and_save_two_fa_account_config_without_preload_content(
            two_fa_account_config=backup
        )
    )
    assert list(saved["configs"]) == ["TOTP", "BACKUP_CODE"], saved
    assert saved["configs"]["BACKUP_CODE"]["codesLeft"] == 10, saved
    assert not saved["configs"]["BACKUP_CODE"].get("codes"), saved  # shown only once

    # The password alone gives a PRE_VERIFICATION_TOKEN, good for the 2FA endpoints only.
    mfa = pre_verification_client(srv.base, account.email, account.password)
    providers = {p.type: p for p in mfa.get_available_two_fa_provider_infos()}
    assert set(providers) == {"TOTP", "BACKUP_CODE"}, providers
    assert providers["TOTP"].default is True
    assert providers["TOTP"].min_verification_code_send_period == 30
    with pytest.raises(ForbiddenException) as forbidden:
        mfa.get_user()
    assert_tb_error(forbidden.value, 403, 20)

    # The enrolment code's step is used up: the login takes a code of a later step.
    wait_for_step_after(enrol_step)
    code, _ = totp_now(secret)
    pair = mfa.check_two_fa_verification_code(provider_type="TOTP", verification_code=code)
    assert_full_pair(pair, srv.base, account.email, "TENANT_ADMIN")

    # Replay: the same code on a new login's pre-verification token is refused.
    again = pre_verification_client(srv.base, account.email, account.password)
    assert_code_refused(again, "TOTP", code)

    # A backup code logs in once (on the same pre-verification token), and not twice.
    pair = again.check_two_fa_verification_code(
        provider_type="BACKUP_CODE", verification_code=backup.codes[0]
    )
    full = assert_full_pair(pair, srv.base, account.email, "TENANT_ADMIN")
    third = pre_verification_client(srv.base, account.email, account.password)
    assert_code_refused(third, "BACKUP_CODE", backup.codes[0])
    pair = third.check_two_fa_verification_code(
        provider_type="BACKUP_CODE", verification_code=backup.codes[1]
    )
    assert_full_pair(pair, srv.base, account.email, "TENANT_ADMIN")

    settings = raw_json(full.get_account_two_fa_settings_without_preload_content())
    assert settings["configs"]["BACKUP_CODE"]["codesLeft"] == 8, settings
    assert settings["configs"]["TOTP"]["useByDefault"] is True, settings


# --------------------------------------------------------------------------------------------
# 2. Connectware: TOTP over /api/mfa/*


def test_connectware_totp(server):
    base = server.base
    admin_token = cw_token(base, "admin", server.admin_password)
    username = "mfa-cw-" + secrets.token_hex(5)
    cw_create_user(base, admin_token, username)

    token = cw_token(base, username, CW_PASSWORD)
    session = cw_ok(connectware(base, "GET", "/api/session", token=token))
    assert session["mfa"] == {"enabled": False, "enforced": False}, session

    secret, enrol_step, backup_codes = cw_enrol(base, token)
    session = cw_ok(connectware(base, "GET", "/api/session", token=token))
    assert session["mfa"]["enabled"] is True, session

    # A new login needs the second factor.
    challenge = cw_mfa_challenge(base, username, CW_PASSWORD)
    wait_for_step_after(enrol_step)
    code, _ = totp_now(secret)
    login = cw_ok(
        connectware(
            base, "POST", "/api/mfa/login", {"username": username, "otp": code, "secret": challenge}
        )
    )
    assert login["token"] and login["expiresAt"] and login["needsMfa"] is False, login
    session = cw_ok(connectware(base, "GET", "/api/session", token=login["token"]))
    assert session["username"] == username, session
    assert session["mfa"] == {"enabled": True, "enforced": False}, session

    # Replay: the same code on a new login is refused.
    challenge = cw_mfa_challenge(base, username, CW_PASSWORD)
    replayed = connectware(
        base, "POST", "/api/mfa/login", {"username": username, "otp": code, "secret": challenge}
    )
    assert_cw_error(replayed, 401, "Invalid OTP")

    # A backup code logs in once.
    by_backup = cw_second_step(base, username, backupCode=backup_codes[0])
    backup_token = cw_ok(by_backup)["token"]
    reused = cw_second_step(base, username, backupCode=backup_codes[0])
    assert_cw_error(reused, 401, "Invalid OTP")

    # New backup codes replace the old ones; proven with one of the old ones.
    regenerated = cw_ok(
        connectware(
            base,
            "POST",
            "/api/mfa/regenerate/backupcodes",
            {"backupCode": backup_codes[1]},
            token=backup_token,
        )
    )["backupCodes"]
    assert len(regenerated) == 10 and not set(regenerated) & set(backup_codes), regenerated
    old = cw_second_step(base, username, backupCode=backup_codes[2])
    assert_cw_error(old, 401, "Invalid OTP")

    # Disabling with a (new) backup code: logins give a token again.
    cw_ok(
        connectware(
            base, "POST", "/api/mfa/disable", {"backupCode": regenerated[0]}, token=backup_token
        )
    )
    plain = cw_token(base, username, CW_PASSWORD)
    session = cw_ok(connectware(base, "GET", "/api/session", token=plain))
    assert session["mfa"]["enabled"] is False, session


# --------------------------------------------------------------------------------------------
# 3. One set of factors: each dialect asks for the TOTP enrolled through the other


def test_totp_is_shared_by_both_dialects(server):
    base = server.base
    admin_token = cw_token(base, "admin", server.admin_password)

    # A: a Connectware user, enrolled through Connectware.
    cw_user = "mfa-x-" + secrets.token_hex(5)
    cw_create_user(base, admin_token, cw_user)
    cw_secret, cw_step, cw_backup = cw_enrol(base, cw_token(base, cw_user, CW_PASSWORD))

    # B: a ThingsBoard tenant administrator, enrolled through tb-ce-client (the shared server
    # keeps the default platform settings: TOTP issued by "Gatehouse", and backup codes).
    account = new_account(base, server.admin(), prefix="mfa-x")
    tb_user = server.login(account.email, account.password)
    tb_secret, tb_step = tb_enrol_totp(tb_user, "Gatehouse")

    # Both logins stop at the second factor, each in its dialect's way.
    mfa_a = pre_verification_client(base, cw_user, CW_PASSWORD)
    providers = {p.type: p for p in mfa_a.get_available_two_fa_provider_infos()}
    assert set(providers) == {"TOTP", "BACKUP_CODE"}, providers
    assert providers["TOTP"].default is True
    challenge_b = cw_mfa_challenge(base, account.email, account.password)

    # No wait here: the codes are those of the step after both enrolments, which may still be
    # ahead of the clock; the server allows one step of clock skew either way (an authenticator
    # whose clock runs a little fast), and oathtool computes them for that time (--now).
    next_step = max(cw_step, tb_step) + 1
    assert totp_step() >= next_step - 1
    ahead = next_step * TOTP_STEP_S + TOTP_STEP_S / 2

    # A logs in through ThingsBoard with its Connectware-enrolled TOTP…
    code_a = totp(cw_secret, at=ahead)
    pair = mfa_a.check_two_fa_verification_code(provider_type="TOTP", verification_code=code_a)
    assert_full_pair(pair, base, cw_user, "CUSTOMER_USER")
    # …and that code is used up for Connectware too.
    replayed = cw_second_step(base, cw_user, otp=code_a)
    assert_cw_error(replayed, 401, "Invalid OTP")
    # A Connectware backup code works for a ThingsBoard login, once.
    mfa_a = pre_verification_client(base, cw_user, CW_PASSWORD)
    pair = mfa_a.check_two_fa_verification_code(
        provider_type="BACKUP_CODE", verification_code=cw_backup[0]
    )
    assert_full_pair(pair, base, cw_user, "CUSTOMER_USER")
    reused = cw_second_step(base, cw_user, backupCode=cw_backup[0])
    assert_cw_error(reused, 401, "Invalid OTP")

    # B logs in through Connectware with its ThingsBoard-enrolled TOTP…
    code_b = totp(tb_secret, at=ahead)
    login = cw_ok(
        connectware(
            base,
            "POST",
            "/api/mfa/login",
            {"username": account.email, "otp": code_b, "secret": challenge_b},
        )
    )
    assert login["token"] and login["needsMfa"] is False, login
    # (the Connectware token works on the ThingsBoard dialect too)
    me = ThingsboardClient(base, token=login["token"]).get_user()
    assert me.email == account.email and me.authority == "TENANT_ADMIN"
    # …and that code is used up for ThingsBoard too.
    mfa_b = pre_verification_client(base, account.email, account.password)
    assert_code_refused(mfa_b, "TOTP", code_b)
