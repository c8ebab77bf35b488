"""OAuth2 administration through tb-ce-client: clients, the login processing URL, domains with
their clients, the public list of login buttons, registration templates, and who may do what."""

import secrets
import uuid

import pytest
from tb_ce_client.exceptions import (
    BadRequestException,
    ForbiddenException,
    NotFoundException,
)
from tb_ce_client.models import (
    Domain,
    OAuth2BasicMapperConfig,
    OAuth2Client,
    OAuth2MapperConfig,
)

from tbkit import assert_tb_error, new_account

MASK = "********"


def google_client(title: str, secret: str = "s", **extra) -> OAuth2Client:
    """The client of ThingsBoard's own example (thingsboard-behaviour.md §7)."""
    return OAuth2Client(
        title=title,
        client_id="cid",
        client_secret=secret,
        authorization_uri="https://accounts.google.com/o/oauth2/v2/auth",
        access_token_uri="https://oauth2.googleapis.com/token",
        scope=["email", "openid", "profile"],
        user_name_attribute_name="email",
        client_authentication_method="BASIC",
        login_button_label=title,
        additional_info={"providerName": "Google"},
        mapper_config=OAuth2MapperConfig(
            type="BASIC",
            allow_user_creation=True,
            activate_user=False,
            basic=OAuth2BasicMapperConfig(email_attribute_key="email", tenant_name_strategy="DOMAIN"),
        ),
        **extra,
    )


def host_and_port(base: str) -> str:
    return base.split("://", 1)[1]


def test_client_and_domain_as_in_thingsboards_example(server):
    sa = server.admin()
    oc = sa.save_o_auth2_client(google_client("Google"))
    client_id = str(oc.id.id)
    try:
        assert oc.id.entity_type == "OAUTH2_CLIENT"
        assert oc.client_secret == MASK
        assert oc.title == "Google" and oc.name == "Google"
        assert oc.mapper_config.basic.tenant_name_strategy == "DOMAIN"
        assert sa.get_login_processing_url() == "/login/oauth2/code/"

        d = sa.save_domain(
            Domain(name=host_and_port(server.base), oauth2_enabled=True, propagate_to_edge=False),
            oauth2_client_ids=[client_id],
        )
        domain_id = str(d.id.id)
        try:
            assert d.name == host_and_port(server.base)
            info = sa.get_domain_info_by_id(id=domain_id)
            assert [str(c.id.id) for c in info.oauth2_client_infos] == [client_id]
            assert info.oauth2_client_infos[0].provider_name == "Google"

            buttons = server.anonymous().get_o_auth2_clients()
            assert [(b.name, b.url) for b in buttons] == [
                ("Google", f"/oauth2/authorization/{client_id}")
            ]
            assert server.anonymous().get_o_auth2_clients(platform="WEB")[0].name == "Google"
            assert server.anonymous().get_o_auth2_clients(pkg_name="com.example.app") == []

            templates = sa.get_o_auth2_client_registration_templates()
            assert {"Google", "Github", "Facebook", "Apple"} <= {t.provider_id for t in templates}
        finally:
            sa.delete_domain(id=domain_id)
        assert server.anonymous().get_o_auth2_clients() == []
    finally:
        sa.delete_oauth2_client(id=client_id)
    with pytest.raises(NotFoundException) as missing:
        sa.get_o_auth2_client_by_id(id=client_id)
    assert_tb_error(missing.value, 404, 32, f"Oauth2 client with id [{client_id}] is not found")


def test_secret_is_masked_and_kept_when_the_mask_comes_back(server):
    sa = server.admin()
    secret = "e2e-secret-" + secrets.token_hex(8)
    oc = sa.save_o_auth2_client(google_client("Masked", secret=secret))
    client_id = str(oc.id.id)
    try:
        read = sa.get_o_auth2_client_by_id(id=client_id)
        assert read.client_secret == MASK
        assert secret not in read.to_json()
        read.title = "Masked, renamed"
        saved = sa.save_o_auth2_client(read)
        assert saved.title == "Masked, renamed"
        assert str(saved.id.id) == client_id
        assert saved.client_secret == MASK
        # The mask cannot create a client.
        with pytest.raises(BadRequestException) as refused:
            sa.save_o_auth2_client(google_client("Copy", secret=MASK))
        assert_tb_error(
            refused.value,
            400,
            31,
            "clientSecret must be the provider's secret, not the mask of a stored one",
        )
    finally:
        sa.delete_oauth2_client(id=client_id)


def test_validation_and_tenant_isolation(server):
    sa = server.admin()
    bad = google_client("No email key")
    bad.mapper_config.basic.email_attribute_key = None
    with pytest.raises(BadRequestException) as refused:
        sa.save_o_auth2_client(bad)
    assert_tb_error(refused.value, 400, 31, "Email attribute key should be specified!")

    first = new_account(server.base, sa, prefix="oauth-ta")
    second = new_account(server.base, sa, prefix="oauth-ta")
    ta1 = server.login(first.email, first.password)
    ta2 = server.login(second.email, second.password)
    own = ta1.save_o_auth2_client(google_client("Tenant client"))
    own_id = str(own.id.id)
    assert str(own.tenant_id.id) == str(first.user.tenant_id.id)
    page = ta1.find_o_auth2_client_infos(page_size=10, page=0)
    assert [str(i.id.id) for i in page.data] == [own_id]
    assert ta2.find_o_auth2_client_infos(page_size=10, page=0).data == []
    assert [str(i.id.id) for i in ta1.find_tenant_o_auth2_client_infos_by_ids(client_ids=[own_id])] == [own_id]
    assert ta2.find_tenant_o_auth2_client_infos_by_ids(client_ids=[own_id]) == []
    with pytest.raises(NotFoundException):
        ta2.get_o_auth2_client_by_id(id=own_id)
    with pytest.raises(NotFoundException):
        ta2.delete_oauth2_client(id=own_id)
    # Tenant administrators read templates but administer neither templates nor domains.
    assert ta1.get_o_auth2_client_registration_templates()
    with pytest.raises(ForbiddenException) as denied:
        ta1.save_domain(Domain(name="tenant.example.com", oauth2_enabled=True))
    assert_tb_error(denied.value, 403, 20, "You don't have permission to perform this operation!")
    with pytest.raises(ForbiddenException):
        ta1.get_domain_infos(page_size=10, page=0)
    ta1.delete_oauth2_client(id=own_id)


def test_domains_and_templates(server):
    sa = server.admin()
    a = sa.save_o_auth2_client(google_client("Domain A"))
    b = sa.save_o_auth2_client(google_client("Domain B"))
    name = f"d-{secrets.token_hex(4)}.example.com"
    d = sa.save_domain(Domain(name=name, oauth2_enabled=False), oauth2_client_ids=[str(a.id.id)])
    try:
        with pytest.raises(BadRequestException) as duplicate:
            sa.save_domain(Domain(name=name.upper(), oauth2_enabled=True))
        assert_tb_error(duplicate.value, 400, 31, "Domain with such name and scheme already exists!")
        with pytest.raises(BadRequestException):
            sa.save_domain(Domain(name="https://" + name + "/login"))
        sa.update_domain_oauth2_clients(id=str(d.id.id), request_body=[str(b.id.id)])
        info = sa.get_domain_info_by_id(id=str(d.id.id))
        assert [c.title for c in info.oauth2_client_infos] == ["Domain B"]
        page = sa.get_domain_infos(page_size=10, page=0, text_search=name)
        assert page.total_elements == 1 and page.data[0].name == name
        # Deleting a client takes it off the domain.
        sa.delete_oauth2_client(id=str(b.id.id))
        assert sa.get_domain_info_by_id(id=str(d.id.id)).oauth2_client_infos == []
    finally:
        sa.delete_domain(id=str(d.id.id))
        sa.delete_oauth2_client(id=str(a.id.id))
    with pytest.raises(NotFoundException):
        sa.get_domain_info_by_id(id=str(d.id.id))

    # Templates: save one, refuse a taken provider id, delete it.
    template = next(t for t in sa.get_o_auth2_client_registration_templates() if t.provider_id == "Github")
    assert template.mapper_config.type == "GITHUB"
    template.id = None
    template.provider_id = "E2E-" + secrets.token_hex(4)
    saved = sa.save_client_registration_template(template)
    assert saved.provider_id == template.provider_id
    with pytest.raises(BadRequestException) as taken:
        sa.save_client_registration_template(template)
    assert_tb_error(
        taken.value, 400, 31, "Client registration template with such providerId already exists!"
    )
    sa.delete_client_registration_template(client_registration_template_id=str(saved.id.id))
    assert saved.provider_id not in {
        t.provider_id for t in sa.get_o_auth2_client_registration_templates()
    }
    with pytest.raises(NotFoundException):
        sa.delete_client_registration_template(client_registration_template_id=str(uuid.uuid4()))
