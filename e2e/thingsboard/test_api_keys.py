"""API keys: create, authenticate with, list, disable, rename, expire, delete."""

import secrets
import time

import pytest
from tb_ce_client import ThingsboardClient
from tb_ce_client.exceptions import NotFoundException, UnauthorizedException
from tb_ce_client.models import ApiKeyInfo, UserId

from tbkit import assert_tb_error, new_account, now_ms


def make_key(client, user_id, description, **extra):
    return client.save_api_key(
        ApiKeyInfo(
            description=description,
            enabled=True,
            user_id=UserId(id=user_id, entity_type="USER"),
            **extra,
        )
    )


def key_refused(base, value, message):
    with pytest.raises(UnauthorizedException) as refused:
        ThingsboardClient(base, api_key=value).get_user()
    assert_tb_error(refused.value, 401, 10, message)


@pytest.fixture
def tenant(server):
    account = new_account(server.base, server.admin(), prefix="keys")
    return account, server.login(account.email, account.password)


def test_create_use_and_list_api_keys(server, tenant):
    account, client = tenant
    marker = secrets.token_hex(4)
    key = make_key(client, account.id, f"ci key {marker}")
    assert key.value.startswith("tb_")
    assert len(key.value) == 89
    assert key.description == f"ci key {marker}"
    assert key.enabled is True
    assert str(key.user_id.id) == account.id
    assert key.id.entity_type == "API_KEY"

    with ThingsboardClient(server.base, api_key=key.value) as by_key:
        me = by_key.get_user()
    assert me.email == account.email
    assert me.authority == "TENANT_ADMIN"

    other = make_key(client, account.id, "another key")
    assert other.value != key.value

    page = client.get_user_api_keys(user_id=account.id, page_size=10, page=0)
    assert page.total_elements == 2
    assert page.has_next is False
    assert {str(k.id.id) for k in page.data} == {str(key.id.id), str(other.id.id)}

    found = client.get_user_api_keys(user_id=account.id, page_size=10, page=0, text_search=marker)
    assert [str(k.id.id) for k in found.data] == [str(key.id.id)]
    assert found.total_elements == 1

    # The value is shown once: listings never carry it.
    raw = client.get_user_api_keys_without_preload_content(user_id=account.id, page_size=10, page=0)
    assert raw.status == 200
    text = raw.data.decode()
    assert key.value not in text and other.value not in text

    # Unknown keys are refused.
    key_refused(server.base, "tb_" + "A" * 86, "Invalid username or password")


def test_disable_enable_and_rename_api_key(server, tenant):
    account, client = tenant
    key = make_key(client, account.id, "to be renamed")
    key_id = str(key.id.id)

    disabled = client.enable_api_key(id=key_id, enabled_value=False)
    assert disabled.enabled is False
    key_refused(server.base, key.value, "User account is not active")

    enabled = client.enable_api_key(id=key_id, enabled_value=True)
    assert enabled.enabled is True
    assert ThingsboardClient(server.base, api_key=key.value).get_user().email == account.email

    renamed = client.update_api_key_description(id=key_id, body="renamed")
    assert renamed.description == "renamed"
    listed = client.get_user_api_keys(user_id=account.id, page_size=10, page=0)
    assert [k.description for k in listed.data if str(k.id.id) == key_id] == ["renamed"]

    # An update through POST /api/apiKey (id set) answers an ApiKey the client can read: the
    # value is never shown again, but must still be a string.
    updated = client.save_api_key(
        ApiKeyInfo(
            id=key.id,
            description="updated by save",
            enabled=False,
            user_id=UserId(id=account.id, entity_type="USER"),
        )
    )
    assert updated.value == ""
    assert updated.description == "updated by save"
    assert updated.enabled is False
    key_refused(server.base, key.value, "User account is not active")


def test_api_key_expires(server, tenant):
    account, client = tenant
    key = make_key(client, account.id, "short-lived", expiration_time=now_ms() + 3000)
    assert key.expiration_time is not None and key.expiration_time > now_ms() - 1000

    deadline = time.monotonic() + 15
    while True:
        try:
            ThingsboardClient(server.base, api_key=key.value).get_user()
        except UnauthorizedException as refused:
            assert_tb_error(refused, 401, 10, "API key is expired")
            break
        assert time.monotonic() < deadline, "the key still works long after its expiration time"
        time.sleep(0.25)
    assert now_ms() >= key.expiration_time


def test_delete_api_key(server, tenant):
    account, client = tenant
    key = make_key(client, account.id, "to be deleted")
    key_id = str(key.id.id)
    assert ThingsboardClient(server.base, api_key=key.value).get_user().email == account.email

    assert client.delete_api_key(id=key_id) is None
    key_refused(server.base, key.value, "Invalid username or password")
    assert client.get_user_api_keys(user_id=account.id, page_size=10, page=0).total_elements == 0

    with pytest.raises(NotFoundException) as missing:
        client.delete_api_key(id=key_id)
    assert_tb_error(missing.value, 404, 32, f"Api key with id [{key_id}] is not found")
