"""Users made through the API: activation by mail and by link, authorities."""

import pytest
from tb_ce_client import ThingsboardClient
from tb_ce_client.exceptions import (
    BadRequestException,
    ConflictException,
    ForbiddenException,
    UnauthorizedException,
)
from tb_ce_client.models import ActivateUserRequest

from tbkit import (
    NULL_UUID,
    assert_redirect,
    assert_tb_error,
    claims,
    create_user,
    get_no_redirect,
    new_account,
    query_param,
    random_customer_id,
    random_tenant_id,
    unique_email,
)


def test_tenant_admin_activated_through_the_mailed_link(server):
    admin = server.admin()
    tenant_id = random_tenant_id()
    email = unique_email("tenant-admin")
    created = create_user(admin, "TENANT_ADMIN", email, tenant_id=tenant_id, send_activation_mail=True)
    assert created.authority == "TENANT_ADMIN"
    assert created.email == email
    assert str(created.tenant_id.id) == str(tenant_id.id)

    # Not active before activation.
    with pytest.raises(UnauthorizedException) as inactive:
        server.login(email, "Any-password-1")
    assert_tb_error(inactive.value, 401, 10)

    mail = server.mailbox.wait_for(email, contains="/api/noauth/activate?activateToken=")
    link = mail.link_containing("/api/noauth/activate?activateToken=")
    assert link.startswith(server.base + "/api/noauth/activate?activateToken="), link
    token = query_param(link, "activateToken")
    assert_redirect(link, "/login/createPassword", "activateToken", token)

    pair = server.anonymous().activate_user(
        activate_user_request=ActivateUserRequest(activate_token=token, password="Tenant-pass-1"),
        send_activation_mail=False,
    )
    assert pair.token and pair.refresh_token
    assert claims(pair.token)["scopes"] == ["TENANT_ADMIN"]
    assert ThingsboardClient(server.base, token=pair.token).get_user().email == email

    tenant = server.login(email, "Tenant-pass-1")
    me = tenant.get_user()
    assert me.authority == "TENANT_ADMIN"
    assert me.email == email
    assert str(me.id.id) == str(created.id.id)
    assert str(me.tenant_id.id) == str(tenant_id.id)
    assert str(me.customer_id.id) == NULL_UUID
    c = claims(tenant.get_token())
    assert c["scopes"] == ["TENANT_ADMIN"]
    assert c["tenantId"] == str(tenant_id.id)
    assert c["sub"] == email

    # The token was used up: the link no longer leads anywhere.
    with pytest.raises(ConflictException):
        server.anonymous().check_activate_token(activate_token=token)


def test_unknown_activation_token(server):
    response = get_no_redirect(server.base + "/api/noauth/activate?activateToken=no-such-token")
    assert response.status == 409, (response.status, response.data[:500])
    assert response.data == b""

    with pytest.raises(ConflictException) as conflict:
        server.anonymous().check_activate_token(activate_token="no-such-token")
    assert conflict.value.status == 409

    with pytest.raises(BadRequestException) as bad:
        server.anonymous().activate_user(
            activate_user_request=ActivateUserRequest(activate_token="no-such-token", password="Some-pass-1"),
            send_activation_mail=False,
        )
    assert_tb_error(
        bad.value, 400, 31, "Unable to find user credentials by activateToken [no-such-token]"
    )


def test_customer_user_may_not_read_security_settings(server):
    admin = server.admin()
    tenant_account = new_account(server.base, admin, prefix="tenant")
    tenant = server.login(tenant_account.email, tenant_account.password)

    customer_id = random_customer_id()
    customer_account = new_account(
        server.base,
        tenant,
        authority="CUSTOMER_USER",
        customer_id=customer_id,
        password="Customer-pass-1",
        prefix="customer",
    )
    customer = server.login(customer_account.email, "Customer-pass-1")
    me = customer.get_user()
    assert me.authority == "CUSTOMER_USER"
    assert str(me.customer_id.id) == str(customer_id.id)
    assert str(me.tenant_id.id) == str(tenant_account.user.tenant_id.id)

    for caller in (customer, tenant):
        with pytest.raises(ForbiddenException) as forbidden:
            caller.get_security_settings()
        assert_tb_error(
            forbidden.value, 403, 20, "You don't have permission to perform this operation!"
        )

    # The sysadmin may.
    assert admin.get_security_settings().password_reset_token_ttl >= 1


def test_links_default_to_the_listen_address(make_server):
    srv = make_server(GATEHOUSE_HTTP__PUBLIC_URL=None)
    admin = srv.admin()
    email = unique_email("default-url")
    user = create_user(admin, "TENANT_ADMIN", email, tenant_id=random_tenant_id(), send_activation_mail=True)
    link = srv.mailbox.wait_for(email).link_containing("/api/noauth/activate?activateToken=")
    assert link.startswith(srv.base + "/api/noauth/activate?activateToken="), link
    fetched = admin.get_activation_link(user_id=str(user.id.id))
    assert fetched.startswith(srv.base + "/api/noauth/activate?activateToken="), fetched
