"""amqtt 0.12.1 authorized by Gatehouse through its mosquitto-go-auth HTTP hooks, driven by
Debian's mosquitto_pub / mosquitto_sub.

Every CONNECT asks `/api/broker/http/user`; every SUBSCRIBE (acc 4), PUBLISH (acc 2) and
delivery to a subscriber (acc 1) asks `/api/broker/http/acl`. Users and roles are made through
the Connectware API, as an administrator would. Each test works on topics and users of its own.
"""

from __future__ import annotations

from mqttkit import (
    Publisher,
    assert_published,
    Subscriber,
    login_token,
    mqtt,
    nonce,
    publish,
)

REFUSED = 128  # granted QoS of a refused subscription (MQTT 3.1.1)
NOT_AUTHORISED = 5  # CONNACK code, and mosquitto_pub's exit status for it


def assert_connect_refused(result) -> None:
    assert result.returncode == NOT_AUTHORISED, f"expected a refused CONNECT:\n{result}"
    assert "not authorised" in result.stderr, result
    assert "sending PUBLISH" not in result.stdout, result


def test_permitted_device_publishes_and_permitted_subscriber_receives(amqtt, api):
    area = nonce("plant")
    # The publisher's right comes from a shared role, the reader's from its own permissions.
    writers = api.create_role(nonce("writers"), [mqtt(f"{area}/+/temperature", "write")])
    device = api.create_user("device", roles=[writers["id"]])
    reader = api.create_user("reader", permissions=[mqtt(f"{area}/#", "read")])

    with Subscriber(amqtt, reader, [f"{area}/#"]) as subscriber:
        assert subscriber.connack() == 0, subscriber.report()
        assert subscriber.granted() == [1], subscriber.report()

        payload = nonce("21.5C")
        assert_published(publish(amqtt, device.username, device.password, f"{area}/line1/temperature", payload))
        subscriber.wait_for(f"{area}/line1/temperature", payload)
        assert subscriber.messages() == [(f"{area}/line1/temperature", payload)]


def test_wrong_password_and_unknown_user_are_refused_at_connect(amqtt, api):
    area = nonce("plant")
    device = api.create_user("device", permissions=[mqtt(f"{area}/#", "readWrite")])

    assert_connect_refused(publish(amqtt, device.username, device.password + "x", f"{area}/t", "wrong"))
    assert_connect_refused(publish(amqtt, device.username, "", f"{area}/t", "empty"))
    assert_connect_refused(publish(amqtt, nonce("nobody"), device.password, f"{area}/t", "unknown"))
    assert_connect_refused(publish(amqtt, None, None, f"{area}/t", "anonymous"))

    with Subscriber(amqtt, device, [f"{area}/#"], password="not-the-password") as subscriber:
        assert subscriber.connack() == NOT_AUTHORISED, subscriber.report()
        assert subscriber.exit_status() == NOT_AUTHORISED, subscriber.report()
        assert any("not authorised" in line for line in subscriber.errors), subscriber.report()

    # The same device with its password is let in: the refusals were about the password.
    assert_published(publish(amqtt, device.username, device.password, f"{area}/t", "right"))


def test_password_change_applies_to_the_next_connect(amqtt, api):
    area = nonce("plant")
    device = api.create_user("device", permissions=[mqtt(f"{area}/#", "write")])
    old = device.password
    # Connects with the old password once, so that a credential cache would hold it.
    assert_published(publish(amqtt, device.username, old, f"{area}/t", "before"))

    new = old + "-new"
    api.update_user(device, password=new)

    assert_connect_refused(publish(amqtt, device.username, old, f"{area}/t", "old"))
    assert_published(publish(amqtt, device.username, new, f"{area}/t", "new"))


def test_forbidden_publish_is_dropped(amqtt, api):
    area = nonce("plant")
    device = api.create_user("device", permissions=[mqtt(f"{area}/allowed/#", "write")])
    reader = api.create_user("reader", permissions=[mqtt(f"{area}/#", "read")])

    with Subscriber(amqtt, reader, [f"{area}/#"]) as subscriber:
        assert subscriber.granted() == [1], subscriber.report()
        with Publisher(amqtt, device, f"{area}/forbidden/valve") as forbidden:
            assert forbidden.connack() == 0, forbidden.report()
            # amqtt drops a refused publish silently: the publisher still gets PUBACK 0.
            assert forbidden.send("forbidden-" + area) == 0, forbidden.report()
        # Read-only is not write: the reader may not publish where it may read.
        assert_published(publish(amqtt, reader.username, reader.password, f"{area}/allowed/x", "by-reader-" + area))
        marker = "marker-" + area
        assert_published(publish(amqtt, device.username, device.password, f"{area}/allowed/x", marker))

        subscriber.wait_for(f"{area}/allowed/x", marker)
        subscriber.assert_not_received("forbidden-" + area)
        subscriber.assert_not_received("by-reader-" + area)


def test_forbidden_subscribe_is_refused(amqtt, api):
    area = nonce("plant")
    reader = api.create_user("reader", permissions=[mqtt(f"{area}/a/#", "read")])
    writer = api.create_user("writer", permissions=[mqtt(f"{area}/a/#", "write")])

    # Outside the permission; wider than it; a write permission does not allow reading.
    for user, topic_filter in [
        (reader, f"{area}/b/#"),
        (reader, f"{area}/#"),
        (reader, "#"),
        (writer, f"{area}/a/#"),
    ]:
        with Subscriber(amqtt, user, [topic_filter]) as subscriber:
            assert subscriber.connack() == 0, subscriber.report()
            assert subscriber.granted() == [REFUSED], (user.username, topic_filter, subscriber.report())
            subscriber.exit_status()
            assert "All subscription requests were denied." in subscriber.errors, subscriber.report()

    # One SUBSCRIBE with several filters: each is decided on its own.
    filters = [f"{area}/a/#", f"{area}/b/x", f"{area}/a/+/temp", f"{area}/+/x"]
    with Subscriber(amqtt, reader, filters) as subscriber:
        assert subscriber.granted() == [1, REFUSED, 1, REFUSED], subscriber.report()
        # The granted filters work: a message on them arrives.
        payload = nonce("hello")
        with Publisher(amqtt, writer, f"{area}/a/m1/temp") as publisher:
            assert publisher.send(payload) == 0, publisher.report()
        subscriber.wait_for(f"{area}/a/m1/temp", payload)


def test_added_permission_applies_to_the_next_publish_and_subscribe(amqtt, api):
    area = nonce("plant")
    command = f"{area}/cmd"
    role = api.create_role(nonce("devices"), [mqtt(f"{area}/data", "write")])
    device = api.create_user("device", roles=[role["id"]])
    watcher = api.create_user("watcher", permissions=[mqtt(f"{area}/#", "read")])

    with Subscriber(amqtt, watcher, [f"{area}/#"]) as watching, Publisher(amqtt, device, command) as commands:
        assert watching.granted() == [1], watching.report()
        assert commands.connack() == 0, commands.report()

        # Before: neither publish nor subscribe on the command topic.
        assert commands.send("before-" + area) == 0
        with Subscriber(amqtt, device, [command]) as denied:
            assert denied.granted() == [REFUSED], denied.report()
        assert_published(publish(amqtt, device.username, device.password, f"{area}/data", "marker1-" + area))
        watching.wait_for(f"{area}/data", "marker1-" + area)
        watching.assert_not_received("before-" + area)

        # The administrator adds the missing permission to the device's role.
        added = api.add_permission(role["id"], mqtt(command, "readWrite"))

        # The next publish on the same, still open connection goes through …
        assert commands.send("after-" + area) == 0, commands.report()
        watching.wait_for(command, "after-" + area)
        # … and the next subscribe is granted, and receives.
        with Subscriber(amqtt, device, [command]) as granted:
            assert granted.granted() == [1], granted.report()
            assert commands.send("to-both-" + area) == 0, commands.report()
            granted.wait_for(command, "to-both-" + area)
        watching.wait_for(command, "to-both-" + area)

        # Taking the permission away again applies to the next publish as well.
        api.delete_permission(role["id"], added["id"])
        assert commands.send("revoked-" + area) == 0, commands.report()
        assert_published(publish(amqtt, device.username, device.password, f"{area}/data", "marker2-" + area))
        watching.wait_for(f"{area}/data", "marker2-" + area)
        watching.assert_not_received("revoked-" + area)
        with Subscriber(amqtt, device, [command]) as denied_again:
            assert denied_again.granted() == [REFUSED], denied_again.report()


def test_taken_role_stops_delivery_on_an_open_subscription(amqtt, api):
    area = nonce("plant")
    readers = api.create_role(nonce("readers"), [mqtt(f"{area}/#", "read")])
    device = api.create_user("device", permissions=[mqtt(f"{area}/#", "write")])
    watcher = api.create_user("watcher", roles=[readers["id"]])
    control = api.create_user("control", roles=[readers["id"]])

    with (
        Subscriber(amqtt, watcher, [f"{area}/#"]) as watching,
        Subscriber(amqtt, control, [f"{area}/#"]) as controlling,
        Publisher(amqtt, device, f"{area}/t") as publisher,
    ):
        assert watching.granted() == [1], watching.report()
        assert controlling.granted() == [1], controlling.report()
        assert publisher.send("first-" + area) == 0
        watching.wait_for(f"{area}/t", "first-" + area)
        controlling.wait_for(f"{area}/t", "first-" + area)

        # The watcher loses its role while subscribed: amqtt asks again (acc 1) at each delivery.
        api.take_role(watcher, readers["id"])
        assert publisher.send("second-" + area) == 0
        controlling.wait_for(f"{area}/t", "second-" + area)
        watching.assert_not_received("second-" + area)

        # And gets it back.
        api.give_role(watcher, readers["id"])
        assert publisher.send("third-" + area) == 0
        watching.wait_for(f"{area}/t", "third-" + area)


def test_gatehouse_token_as_password(amqtt, api, gatehouse):
    area = nonce("plant")
    device = api.create_user("device", permissions=[mqtt(f"{area}/#", "readWrite")])
    other = api.create_user("other", permissions=[mqtt(f"{area}/#", "readWrite")])
    token = login_token(gatehouse.base, device.username, device.password)

    with Subscriber(amqtt, device, [f"{area}/#"], password=token) as subscriber:
        assert subscriber.connack() == 0, subscriber.report()
        assert subscriber.granted() == [1], subscriber.report()
        payload = nonce("by-token")
        assert_published(publish(amqtt, device.username, token, f"{area}/t", payload))
        subscriber.wait_for(f"{area}/t", payload)

    # The token names its user: with another username it is refused.
    assert_connect_refused(publish(amqtt, other.username, token, f"{area}/t", "someone-else"))
    # A token whose session was revoked is refused.
    api.revoke_tokens(device)
    assert_connect_refused(publish(amqtt, device.username, token, f"{area}/t", "revoked"))


def test_publish_prefix_user_cannot_publish_through_a_broker_that_cannot_rewrite(amqtt, api):
    """go-auth/amqtt can only allow or deny: a user with an `mqttPublishPrefix` would publish on
    the unprefixed topic, so Gatehouse refuses its publishes on this hook (see
    crates/server/src/dialect/broker/http_backend.rs)."""
    area = nonce("plant")
    device = api.create_user(
        "device",
        permissions=[mqtt(f"{area}/#", "write")],
        mqttPublishPrefix=f"{area}/",
    )
    reader = api.create_user("reader", permissions=[mqtt(f"{area}/#", "read")])
    writer = api.create_user("writer", permissions=[mqtt(f"{area}/#", "write")])

    with Subscriber(amqtt, reader, [f"{area}/#"]) as subscriber:
        assert subscriber.granted() == [1], subscriber.report()
        assert_published(publish(amqtt, device.username, device.password, f"{area}/x", "prefixed-" + area))
        assert_published(publish(amqtt, writer.username, writer.password, f"{area}/x", "marker-" + area))
        subscriber.wait_for(f"{area}/x", "marker-" + area)
        subscriber.assert_not_received("prefixed-" + area)
