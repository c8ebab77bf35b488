"""Helpers of the broker suite: the Connectware API (users, roles, logins) and real MQTT clients.

The MQTT clients are Debian's `mosquitto_pub` and `mosquitto_sub` (mosquitto-clients 2.0.11,
MQTT 3.1.1), run with `-d` so that every CONNACK, SUBACK and PUBACK is visible, and through
`stdbuf -oL` so that their output arrives line by line while they run:

- `Subscriber`: a `mosquitto_sub` that stays connected; `granted()` is the SUBACK's list of
  granted QoS (128 = refused), `wait_for(topic, payload)` a message it received;
- `Publisher`: a `mosquitto_pub -l` that stays connected and publishes one message per `send()`,
  so that a test can show that a change reached the *next* publish of the same connection;
- `publish()`: a one-shot `mosquitto_pub` (connect, publish, disconnect) with its exit status.

What amqtt does with a refusal (see /work/shared/TESTING.md): a refused CONNECT is CONNACK 5
(`Connection Refused: not authorised`, exit 5); a refused PUBLISH is dropped silently (the
publisher still gets PUBACK rc 0), so a test shows that a subscriber with rights did not get
it; a refused SUBSCRIBE is granted QoS 128 (`All subscription requests were denied`, exit 0).
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any

import urllib.error
import urllib.request

WAIT_S = 10.0
# How long a message that must NOT arrive is waited for, once a message published after it
# (on a topic the subscriber may receive) has arrived.
GRACE_S = 0.5
DEVICE_PASSWORD_PREFIX = "Dev-pass-"

HTTP_TIMEOUT_S = 15.0


def http(method: str, url: str, body: Any = None, headers: dict | None = None) -> tuple[int, str]:
    """One HTTP request (JSON body if given); the status and the body text, whatever the status."""
    headers = dict(headers or {})
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def nonce(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def mqtt(resource: str, operation: str) -> dict[str, str]:
    """A permission in the `mqtt` context (`read`, `write` or `readWrite`)."""
    return {"resource": resource, "operation": operation, "context": "mqtt"}


# --------------------------------------------------------------------------------------------
# Connectware API


@dataclass
class User:
    id: str
    username: str
    password: str


class Connectware:
    """The Connectware API of one server, as one logged-in user."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.token = token

    @classmethod
    def login(cls, base: str, username: str, password: str) -> "Connectware":
        return cls(base, login_token(base, username, password))

    def call(self, method: str, path: str, body: Any = None, expect: int | None = None) -> Any:
        status, text = http(method, self.base + path, body, {"Authorization": f"Bearer {self.token}"})
        if expect is not None and status != expect:
            raise AssertionError(f"{method} {path} {body!r}: HTTP {status}, expected {expect}; body {text}")
        return json.loads(text) if text else None

    # C14 — a shared role
    def create_role(self, name: str, permissions: list[dict]) -> dict:
        return self.call("POST", "/api/roles", {"name": name, "permissions": permissions}, expect=201)

    # C1 — a user; `permissions` go into the user's own role
    def create_user(
        self,
        prefix: str,
        permissions: list[dict] | None = None,
        roles: list[str] | None = None,
        **fields: Any,
    ) -> User:
        username = nonce(prefix)
        password = DEVICE_PASSWORD_PREFIX + secrets.token_hex(6)
        body = {
            "username": username,
            "password": password,
            "initialPermissions": permissions or [],
            "roles": roles or [],
            **fields,
        }
        created = self.call("POST", "/api/users", body, expect=201)
        assert created["username"] == username, created
        return User(created["id"], username, password)

    # C6 — update a user
    def update_user(self, user: User, **fields: Any) -> dict:
        return self.call("PUT", f"/api/users/{user.id}", fields, expect=200)

    # C21 / C24 — add or delete a permission of a role
    def add_permission(self, role_id: str, permission: dict) -> dict:
        return self.call("POST", f"/api/roles/{role_id}/permissions", permission, expect=201)

    def delete_permission(self, role_id: str, permission_id: str) -> None:
        self.call("DELETE", f"/api/roles/{role_id}/permissions/{permission_id}", expect=204)

    # C12 / C13 — give or take a role
    def give_role(self, user: User, role_id: str) -> None:
        self.call("POST", f"/api/users/{user.id}/roles", {"roleId": role_id}, expect=201)

    def take_role(self, user: User, role_id: str) -> None:
        self.call("DELETE", f"/api/users/{user.id}/roles", {"roleId": role_id}, expect=204)

    # C9 — revoke every token of a user
    def revoke_tokens(self, user: User) -> None:
        self.call("DELETE", f"/api/users/{user.id}/tokens", expect=204)


def login_token(base: str, username: str, password: str) -> str:
    """C25 `POST /api/login`: the token of a new session."""
    status, text = http("POST", base + "/api/login", {"username": username, "password": password})
    assert status == 200, f"login of {username}: HTTP {status}; body {text}"
    return json.loads(text)["token"]


# --------------------------------------------------------------------------------------------
# MQTT clients


def _connection_args(broker, username: str | None, password: str | None, client_id: str) -> list[str]:
    args = ["-h", broker.host, "-p", str(broker.port), "-i", client_id, "-V", "mqttv311"]
    if username is not None:
        args += ["-u", username]
    if password is not None:
        args += ["-P", password]
    return args


@dataclass
class PublishResult:
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"exit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"

    @property
    def puback_codes(self) -> list[int]:
        return [int(code) for code in re.findall(r"received PUBACK \(Mid: \d+, RC:(\d+)\)", self.stdout)]


def publish(
    broker, username: str | None, password: str | None, topic: str, payload: str, qos: int = 1
) -> PublishResult:
    """One `mosquitto_pub`: connect, publish one message, disconnect."""
    args = ["mosquitto_pub", "-d", *_connection_args(broker, username, password, nonce("pub"))]
    args += ["-q", str(qos), "-t", topic, "-m", payload]
    done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    return PublishResult(done.returncode, done.stdout, done.stderr)


def assert_published(result: PublishResult) -> None:
    """A one-shot publish that was accepted: CONNACK 0 and PUBACK 0."""
    assert result.returncode == 0, f"expected a publish:\n{result}"
    assert "received CONNACK (0)" in result.stdout, result
    assert result.puback_codes == [0], result


class _Client:
    """A long-running mosquitto client whose output is read line by line into `lines`."""

    def __init__(self, args: list[str], stdin: bool) -> None:
        self.args = args
        self._cond = threading.Condition()
        self.lines: list[str] = []
        self.errors: list[str] = []
        self.process = subprocess.Popen(
            ["stdbuf", "-oL", "-eL", *args],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.errors), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, into: list[str]) -> None:
        for line in stream:
            with self._cond:
                into.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _wait(self, find, what: str, timeout: float = WAIT_S):
        """The first non-None `find(lines)`; fails when the client exits or time runs out."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = find(self.lines)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if self.process.poll() is not None and all(not r.is_alive() for r in self._readers):
                    raise AssertionError(f"{what}: the client exited\n{self.report()}")
                if remaining <= 0:
                    raise AssertionError(f"{what}: nothing within {timeout} s\n{self.report()}")
                self._cond.wait(min(remaining, 0.1))

    def report(self) -> str:
        with self._cond:
            out, err = "\n".join(self.lines), "\n".join(self.errors)
        status = self.process.poll()
        return (
            f"{' '.join(self.args)}\nexit status: {status if status is not None else 'running'}\n"
            f"stdout:\n{out}\nstderr:\n{err}"
        )

    def connack(self) -> int:
        """The CONNACK code (0 accepted, 5 not authorised)."""

        def find(lines):
            for line in lines:
                match = re.search(r"received CONNACK \((\d+)\)", line)
                if match:
                    return int(match.group(1))
            return None

        return self._wait(find, "CONNACK")

    def exit_status(self, timeout: float = WAIT_S) -> int:
        """Waits for the client to exit and for its last output to be read."""
        try:
            status = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the client did not exit within {timeout} s\n{self.report()}")
        for reader in self._readers:
            reader.join(timeout=timeout)
        return status

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        for reader in self._readers:
            reader.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


MESSAGE_MARK = "MSG "


class Subscriber(_Client):
    """A `mosquitto_sub` subscribed to `filters` at QoS 1, connected until closed."""

    def __init__(self, broker, user, filters: list[str], password: str | None = None) -> None:
        self.client_id = nonce("sub")
        username = user.username if user is not None else None
        if password is None and user is not None:
            password = user.password
        args = ["mosquitto_sub", "-d", *_connection_args(broker, username, password, self.client_id)]
        args += ["-q", "1", "-F", MESSAGE_MARK + "%t %p"]
        for topic_filter in filters:
            args += ["-t", topic_filter]
        super().__init__(args, stdin=False)

    def granted(self) -> list[int]:
        """The granted QoS of each filter in the SUBACK, in order; 128 means refused."""

        def find(lines):
            for line in lines:
                match = re.match(r"Subscribed \(mid: \d+\): ([\d, ]+)$", line)
                if match:
                    return [int(code) for code in match.group(1).split(",")]
            return None

        return self._wait(find, "SUBACK")

    def granted_codes(self) -> list[list[int]]:
        """Every SUBACK seen so far (without waiting): the granted QoS of each filter."""
        with self._cond:
            found = [re.match(r"Subscribed \(mid: \d+\): ([\d, ]+)$", line) for line in self.lines]
        return [[int(code) for code in match.group(1).split(",")] for match in found if match]

    def wait_until_dropped(self, timeout: float = WAIT_S) -> None:
        """Waits until the broker closed the connection after the SUBSCRIBE (RabbitMQ's answer to
        a refused one): mosquitto_sub shows it by connecting again."""

        def find(lines):
            subscribe = next((i for i, line in enumerate(lines) if "sending SUBSCRIBE" in line), None)
            again = subscribe is not None and any(
                line.endswith("sending CONNECT") for line in lines[subscribe + 1 :]
            )
            return True if again else None

        self._wait(find, "the broker closing the connection", timeout)

    def messages(self) -> list[tuple[str, str]]:
        with self._cond:
            return [
                tuple(line[len(MESSAGE_MARK):].split(" ", 1))
                for line in self.lines
                if line.startswith(MESSAGE_MARK)
            ]

    def wait_for(self, topic: str, payload: str, timeout: float = WAIT_S) -> None:
        def find(lines):
            return True if (topic, payload) in self.messages() else None

        self._wait(find, f"message {payload!r} on {topic!r}", timeout)

    def assert_not_received(self, payload: str) -> None:
        """Call after a message published later has arrived: waits GRACE_S more, then checks."""
        time.sleep(GRACE_S)
        got = [message for message in self.messages() if message[1] == payload]
        assert not got, f"received {got}, which must have been refused\n{self.report()}"


class Publisher(_Client):
    """A `mosquitto_pub -l` publishing each `send()` to `topic` at QoS 1 on one connection."""

    def __init__(self, broker, user, topic: str) -> None:
        self.topic = topic
        self.sent = 0
        args = ["mosquitto_pub", "-d", *_connection_args(broker, user.username, user.password, nonce("pub"))]
        args += ["-q", "1", "-t", topic, "-l"]
        super().__init__(args, stdin=True)

    def send(self, payload: str) -> int:
        """Publishes one message; returns the PUBACK's code once the broker acknowledged it."""
        assert "\n" not in payload
        self.sent += 1
        self.process.stdin.write(payload + "\n")
        self.process.stdin.flush()
        mid = self.sent

        def find(lines):
            for line in lines:
                match = re.search(rf"received PUBACK \(Mid: {mid}, RC:(\d+)\)", line)
                if match:
                    return int(match.group(1))
            return None

        return self._wait(find, f"PUBACK of message {mid} ({payload!r})")

    def close(self) -> None:
        if self.process.poll() is None and self.process.stdin:
            try:
                self.process.stdin.close()  # end of input: mosquitto_pub disconnects cleanly
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        super().close()
