"""Fixtures of the broker end-to-end suite: a real MQTT broker authorized by Gatehouse.

- `gatehouse`: the real `gatehouse` binary, one per backend for the whole run, on a free
  loopback port with a fresh database (SQLite in a temporary data dir; with
  GATEHOUSE_TEST_DATABASE_URL set, also a fresh PostgreSQL database made and dropped with psql).
  The `backend` fixture parametrizes every test over the databases in use.
- `amqtt`: an amqtt 0.12.1 broker (PyPI) on a free loopback port, started by `amqtt_broker.py`,
  whose `UserAuthHttpPlugin` and `TopicAuthHttpPlugin` ask that server's mosquitto-go-auth hooks
  (`/api/broker/http/user`, `/api/broker/http/acl`; POST, JSON) at every CONNECT, PUBLISH,
  SUBSCRIBE and delivery. The hooks are reached from loopback, which Gatehouse allows by default.
- `rabbitmq`: a RabbitMQ node of its own (Debian's rabbitmq-server 3.10 with its `rabbitmq_mqtt`
  and `rabbitmq_auth_backend_http` plugins) on a free loopback port, asking that server's
  RabbitMQ hooks (`/api/broker/rabbitmq/{user,vhost,resource,topic}`).
- `api`: the server's Connectware API logged in as `admin`, to make users and roles.

The binary is $GATEHOUSE_BIN, else target/debug/gatehouse (e2e/brokers/run builds it). A failing
test shows what Gatehouse and the broker logged while it ran; a server that panicked or died
fails the run.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

# Only the standard library and pytest here (and in mqttkit): another suite's pytest run that
# walks into this directory loads this file, and must not fail on packages only this suite
# installs (amqtt, aiohttp, PyYAML live in the broker's own process).
from mqttkit import Connectware, http

# e2e/ports.py is shared with the other suites.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ports import free_port  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ADMIN_PASSWORD = "e2e-admin-" + secrets.token_hex(8)
POSTGRES_URL = os.environ.get("GATEHOUSE_TEST_DATABASE_URL", "").strip()
BACKENDS = ["sqlite"] + (["postgres"] if POSTGRES_URL else [])
START_TIMEOUT_S = 60.0
BROKER_START_TIMEOUT_S = 20.0
LOG_TAIL_CHARS = 30_000

# What the server gets besides its port, data dir and admin password.
GATEHOUSE_ENV = {
    "GATEHOUSE_LOG__LEVEL": "info",
    # The same algorithm at a low cost: the suite hashes many passwords on a shared machine.
    "GATEHOUSE_HASHING__ARGON2__MEMORY_KIB": "1024",
    "GATEHOUSE_HASHING__ARGON2__ITERATIONS": "1",
    "GATEHOUSE_HASHING__ARGON2__PARALLELISM": "1",
    # The wrong-password tests fail logins on purpose.
    "GATEHOUSE_AUTH__LOGIN_PER_ACCOUNT__BURST": "1000",
    "GATEHOUSE_AUTH__LOGIN_PER_ACCOUNT__PER_MINUTE": "1000",
    "GATEHOUSE_AUTH__LOGIN_PER_ADDRESS__BURST": "1000",
    "GATEHOUSE_AUTH__LOGIN_PER_ADDRESS__PER_MINUTE": "1000",
    # Compiled permissions may be kept for an hour: a role change must reach the next check
    # through invalidation, not because a short cache lifetime ran out.
    "GATEHOUSE_BROKER__CACHE_TTL_SECS": "3600",
}



def read_tail(path: Path, offset: int = 0) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    if len(text) > LOG_TAIL_CHARS:
        text = "…(cut)…\n" + text[-LOG_TAIL_CHARS:]
    return text


def stop_process(process: subprocess.Popen | None) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class LoggedProcess:
    """A process of the suite whose output goes to a log file the failure report shows."""

    name: str
    log_path: Path
    process: subprocess.Popen | None

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def read_log(self, offset: int = 0) -> str:
        return read_tail(self.log_path, offset)


class MqttBroker(LoggedProcess):
    """A broker process of the suite that listens for MQTT at `host:port`."""

    host: str
    port: int

    def wait_listening(self, timeout: float) -> None:
        """Waits until the broker accepts connections; fails if it exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with status {self.process.returncode} during start-up; "
                    f"its log:\n{self.read_log()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(
            f"{self.name} did not listen on {self.host}:{self.port} within {timeout} s; "
            f"its log:\n{self.read_log()}"
        )


# --------------------------------------------------------------------------------------------
# PostgreSQL


class PostgresDatabase:
    """A fresh database on the server of GATEHOUSE_TEST_DATABASE_URL, made and dropped with psql."""

    def __init__(self, server_url: str) -> None:
        if shutil.which("psql") is None:
            raise RuntimeError("GATEHOUSE_TEST_DATABASE_URL is set but psql is not installed")
        self.server_url = server_url
        self.name = f"gh_brokers_e2e_{os.getpid()}_{secrets.token_hex(4)}"
        self._psql(f'CREATE DATABASE "{self.name}"')
        parts = urllib.parse.urlsplit(server_url)
        self.url = urllib.parse.urlunsplit(parts._replace(path="/" + self.name))

    def _psql(self, sql: str) -> None:
        result = subprocess.run(
            ["psql", self.server_url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed ({sql}): {result.stderr.strip()}")

    def drop(self) -> None:
        self._psql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


# --------------------------------------------------------------------------------------------
# Gatehouse


def gatehouse_binary() -> Path:
    configured = os.environ.get("GATEHOUSE_BIN")
    if configured:
        path = Path(configured)
    else:
        path = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug" / "gatehouse"
    if not path.is_absolute():
        path = ROOT / path
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"no gatehouse binary at {path}: run e2e/brokers/run or set GATEHOUSE_BIN")
    return path


class GatehouseServer(LoggedProcess):
    """One gatehouse process with its own port and database."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.name = f"gatehouse {backend}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.admin_password = ADMIN_PASSWORD
        self.dir = Path(tempfile.mkdtemp(prefix="gatehouse-brokers-e2e-"))
        self.log_path = self.dir / "server.log"
        self.process = None
        self.database: PostgresDatabase | None = None
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        data_dir = self.dir / "data"
        data_dir.mkdir()
        args = [
            str(gatehouse_binary()),
            "serve",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--data-dir",
            str(data_dir),
        ]
        if self.backend == "postgres":
            self.database = PostgresDatabase(POSTGRES_URL)
            args += ["--database-url", self.database.url]
        # Nothing of the caller's Gatehouse configuration leaks in (GATEHOUSE_CONFIG, …).
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
        env.update(GATEHOUSE_ENV)
        env["NO_COLOR"] = "1"  # the log is a file, shown in failure reports
        env.update(
            {
                "GATEHOUSE_ADMIN_PASSWORD": self.admin_password,
                "GATEHOUSE_HTTP__PUBLIC_URL": self.base,
            }
        )
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                args,
                env=env,
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        last_error = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gatehouse exited with status {self.process.returncode} during start-up; "
                    f"its log:\n{self.read_log()}"
                )
            try:
                status, _ = http("GET", self.base + "/healthz")
                if status == 200:
                    return
                last_error = f"/healthz answered {status}"
            except OSError as error:
                last_error = str(error)
            time.sleep(0.05)
        raise RuntimeError(
            f"gatehouse did not become ready within {START_TIMEOUT_S} s ({last_error}); "
            f"its log:\n{self.read_log()}"
        )

    def panics(self) -> list[str]:
        return [line for line in self.read_log().splitlines() if "panicked" in line]

    def stop(self) -> None:
        try:
            stop_process(self.process)
        finally:
            try:
                if self.database is not None:
                    self.database.drop()
                    self.database = None
            finally:
                shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# amqtt


class AmqttBroker(MqttBroker):
    """amqtt 0.12.1 with its HTTP plugins asking Gatehouse's mosquitto-go-auth hooks."""

    def __init__(self, gatehouse: GatehouseServer) -> None:
        self.name = f"amqtt ({gatehouse.name})"
        self.host = "127.0.0.1"
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="amqtt-e2e-"))
        self.log_path = self.dir / "broker.log"
        self.process = None
        hook = {
            "host": "127.0.0.1",
            "port": gatehouse.port,
            "request_method": "post",
            "params_mode": "json",
            "response_mode": "json",
        }
        self.config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            # Only these two plugins decide: amqtt needs every auth plugin that answers to allow,
            # so no anonymous or file plugin may be listed next to them.
            "plugins": {
                "amqtt.contrib.http.UserAuthHttpPlugin": {
                    **hook,
                    "user_uri": "/api/broker/http/user",
                },
                "amqtt.contrib.http.TopicAuthHttpPlugin": {
                    **hook,
                    "topic_uri": "/api/broker/http/acl",
                },
            },
        }
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        # JSON is YAML: the launcher reads it with yaml.safe_load.
        config_path = self.dir / "broker.yaml"
        config_path.write_text(json.dumps(self.config, indent=2), encoding="utf-8")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(HERE / "amqtt_broker.py"), str(config_path)],
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_listening(BROKER_START_TIMEOUT_S)

    def stop(self) -> None:
        try:
            stop_process(self.process)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# RabbitMQ

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
RABBITMQ_START_TIMEOUT_S = 90.0


class RabbitMqBroker(MqttBroker):
    """A RabbitMQ node of its own (Debian's rabbitmq-server 3.10, beside the machine's node):
    only its MQTT listener on a free port, and `rabbitmq_auth_backend_http` asking Gatehouse's
    RabbitMQ hooks (`/api/broker/rabbitmq/{user,vhost,resource,topic}`, GET) for everything.
    Its node name, ports, data, logs, cookie and configuration are in a temporary directory, so
    the machine's own RabbitMQ is neither used nor changed."""

    def __init__(self, gatehouse: GatehouseServer) -> None:
        if not os.access(RABBITMQ_SERVER, os.X_OK):
            raise RuntimeError(f"{RABBITMQ_SERVER} not found: install rabbitmq-server (Debian)")
        self.name = f"rabbitmq ({gatehouse.name})"
        self.host = "127.0.0.1"
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="rabbitmq-e2e-"))
        self.log_path = self.dir / "broker.log"
        self.process = None
        self.node = f"gatehouse-e2e-{os.getpid()}-{secrets.token_hex(3)}@localhost"
        hooks = f"{gatehouse.base}/api/broker/rabbitmq"
        (self.dir / "rabbitmq.conf").write_text(
            "\n".join(
                [
                    "listeners.tcp = none",
                    f"mqtt.listeners.tcp.default = {self.host}:{self.port}",
                    "mqtt.allow_anonymous = false",
                    "auth_backends.1 = http",
                    "auth_http.http_method = get",
                    f"auth_http.user_path = {hooks}/user",
                    f"auth_http.vhost_path = {hooks}/vhost",
                    f"auth_http.resource_path = {hooks}/resource",
                    f"auth_http.topic_path = {hooks}/topic",
                    "log.console = true",
                    "log.console.level = warning",
                    "log.file = false",
                ]
            )
            + "\n",
            encoding="utf-8",
        )
        (self.dir / "enabled_plugins").write_text(
            "[rabbitmq_mqtt,rabbitmq_auth_backend_http].\n", encoding="utf-8"
        )
        (self.dir / "rabbitmq-env.conf").write_text("", encoding="utf-8")
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env.update(
            {
                "HOME": str(self.dir),  # the node's Erlang cookie
                "RABBITMQ_NODENAME": self.node,
                "RABBITMQ_NODE_PORT": str(free_port()),
                "RABBITMQ_DIST_PORT": str(free_port()),
                "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.dir / "log"),
                "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
                # Not /etc/rabbitmq/rabbitmq-env.conf, which names the machine's node.
                "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            }
        )
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(RABBITMQ_SERVER)],
                env=env,
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_listening(RABBITMQ_START_TIMEOUT_S)

    def stop(self) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                # The script runs the Erlang VM as a child: stop the whole group.
                os.killpg(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout=10)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Fixtures and failure reports

_RUNNING: list[LoggedProcess] = []
_LOGS = pytest.StashKey[list]()


def _finish(process: LoggedProcess) -> None:
    """Stops a process of the suite; dying early or panicking fails the run."""
    if process in _RUNNING:
        _RUNNING.remove(process)
    exited_early = process.process is not None and process.process.poll() is not None
    panics = process.panics() if isinstance(process, GatehouseServer) else []
    log = process.read_log()
    process.stop()
    if exited_early:
        pytest.fail(f"{process.name} exited while the tests ran; its log:\n{log}")
    if panics:
        pytest.fail(f"{process.name} panicked:\n" + "\n".join(panics) + f"\n\n{log}")


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def gatehouse(backend):
    server = GatehouseServer(backend)
    _RUNNING.append(server)
    yield server
    _finish(server)


def _broker(make, gatehouse):
    """Starts a broker for `gatehouse` (the MQTT clients must be installed) and stops it after."""
    missing = [tool for tool in ("mosquitto_pub", "mosquitto_sub", "stdbuf") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)}: install mosquitto-clients (and coreutils)")
    broker = make(gatehouse)
    _RUNNING.append(broker)
    yield broker
    _finish(broker)


@pytest.fixture(scope="session")
def amqtt(gatehouse):
    yield from _broker(AmqttBroker, gatehouse)


@pytest.fixture(scope="session")
def rabbitmq(gatehouse):
    yield from _broker(RabbitMqBroker, gatehouse)


@pytest.fixture(scope="session")
def api(gatehouse) -> Connectware:
    return Connectware.login(gatehouse.base, "admin", gatehouse.admin_password)


@pytest.fixture(autouse=True)
def _remember_log_offsets(request):
    """Marks where the running processes' logs stand, so a failure shows what this test caused."""
    request.node.stash[_LOGS] = [(running, running.log_size()) for running in _RUNNING]
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        known = {id(running) for running, _ in item.stash.get(_LOGS, [])}
        # Processes started by this test's own fixtures were not running when it began.
        logs = item.stash.get(_LOGS, []) + [(p, 0) for p in _RUNNING if id(p) not in known]
        for running, offset in logs:
            report.sections.append((f"log of {running.name}", running.read_log(offset)))

