"""RabbitMQ 3.10 (Debian) with its MQTT plugin, authorized by Gatehouse through
`rabbitmq_auth_backend_http`, driven by Debian's mosquitto_pub / mosquitto_sub.

RabbitMQ asks `/api/broker/rabbitmq/user` and `/vhost` at every CONNECT, `/resource` for the
exchange and the client's queue, and `/topic` with the routing key (the MQTT topic with `/` as
`.`) at every PUBLISH (`write`) and SUBSCRIBE (`read`). RabbitMQ shows a refused CONNECT as
CONNACK 4 or 5 and closes the connection of a client whose PUBLISH or SUBSCRIBE is refused.
"""

from __future__ import annotations

from mqttkit import Subscriber, assert_published, login_token, mqtt, nonce, publish

# CONNACK codes (and mosquitto_pub's exit status for them) of a refused CONNECT.
BAD_CREDENTIALS = 4
NOT_AUTHORISED = 5
CONNECTION_LOST = 7  # mosquitto_pub's exit status when the broker closes the connection


def assert_connect_refused(result) -> None:
    assert result.returncode in (BAD_CREDENTIALS, NOT_AUTHORISED), f"expected a refused CONNECT:\n{result}"
    assert "Connection Refused" in result.stderr, result
    assert "sending PUBLISH" not in result.stdout, result


def assert_publish_refused(result) -> None:
    assert "received CONNACK (0)" in result.stdout, result
    assert result.returncode == CONNECTION_LOST, f"expected the broker to close the connection:\n{result}"
    assert result.puback_codes == [], result


def test_permitted_device_publishes_and_subscriber_receives(rabbitmq, api):
    area = nonce("plant")
    writers = api.create_role(nonce("writers"), [mqtt(f"{area}/+/temperature", "write")])
    device = api.create_user("device", roles=[writers["id"]])
    reader = api.create_user("reader", permissions=[mqtt(f"{area}/#", "read")])

    with Subscriber(rabbitmq, reader, [f"{area}/#"]) as subscriber:
        assert subscriber.connack() == 0, subscriber.report()
        assert subscriber.granted() == [1], subscriber.report()
        payload = nonce("21.5C")
        assert_published(publish(rabbitmq, device.username, device.password, f"{area}/line1/temperature", payload))
        subscriber.wait_for(f"{area}/line1/temperature", payload)


def test_wrong_password_unknown_user_and_token_of_another_user_are_refused(rabbitmq, api, gatehouse):
    area = nonce("plant")
    device = api.create_user("device", permissions=[mqtt(f"{area}/#", "readWrite")])
    other = api.create_user("other", permissions=[mqtt(f"{area}/#", "readWrite")])

    assert_connect_refused(publish(rabbitmq, device.username, device.password + "x", f"{area}/t", "wrong"))
    assert_connect_refused(publish(rabbitmq, nonce("nobody"), device.password, f"{area}/t", "unknown"))
    token = login_token(gatehouse.base, device.username, device.password)
    assert_connect_refused(publish(rabbitmq, other.username, token, f"{area}/t", "someone-else"))
    # The right password, and the user's own token, are let in.
    assert_published(publish(rabbitmq, device.username, device.password, f"{area}/t", "right"))
    assert_published(publish(rabbitmq, device.username, token, f"{area}/t", "by-token"))


def test_forbidden_publish_and_subscribe_are_refused(rabbitmq, api):
    area = nonce("plant")
    device = api.create_user("device", permissions=[mqtt(f"{area}/allowed/#", "write")])
    reader = api.create_user("reader", permissions=[mqtt(f"{area}/a/#", "read")])

    assert_publish_refused(publish(rabbitmq, device.username, device.password, f"{area}/forbidden", "x"))
    # Write is not read, and read is not write.
    assert_publish_refused(publish(rabbitmq, reader.username, reader.password, f"{area}/a/x", "x"))
    for user, topic_filter in [(reader, f"{area}/b/#"), (reader, f"{area}/#"), (device, f"{area}/allowed/#")]:
        with Subscriber(rabbitmq, user, [topic_filter]) as subscriber:
            subscriber.wait_until_dropped()
            assert subscriber.granted_codes() == [], (user.username, topic_filter, subscriber.report())


def test_added_permission_applies_to_the_next_connection(rabbitmq, api):
    area = nonce("plant")
    role = api.create_role(nonce("devices"), [mqtt(f"{area}/data", "write")])
    device = api.create_user("device", roles=[role["id"]])
    assert_publish_refused(publish(rabbitmq, device.username, device.password, f"{area}/cmd", "before"))
    added = api.add_permission(role["id"], mqtt(f"{area}/cmd", "write"))
    assert_published(publish(rabbitmq, device.username, device.password, f"{area}/cmd", "after"))
    api.delete_permission(role["id"], added["id"])
    assert_publish_refused(publish(rabbitmq, device.username, device.password, f"{area}/cmd", "revoked"))
