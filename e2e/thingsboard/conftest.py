"""Fixtures of the ThingsBoard-dialect end-to-end suite.

Every test talks to the real `gatehouse` binary through ThingsBoard's own Python client
(tb-ce-client). Each server gets its own SMTP server (aiosmtpd, in process), a free loopback
port and a fresh database: SQLite in a temporary data dir, and — when
GATEHOUSE_TEST_DATABASE_URL is set — a fresh PostgreSQL database created with psql and dropped
afterwards. The `backend` fixture parametrizes every test over the databases in use.

- `server`: one server per backend for the whole run, for tests that change no global setting.
- `make_server(**env)`: a server of the test's own, with extra environment (short token
  lifetimes, …); for tests that change global settings (security settings, password policy).

The binary is $GATEHOUSE_BIN, else target/debug/gatehouse (e2e/thingsboard/run builds it).
A failing test shows the log its servers wrote while it ran; a server that panicked fails the
test that owned it.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import secrets
import signal
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import urllib3
from aiosmtpd.controller import Controller
from tb_ce_client import ThingsboardClient

# e2e/ports.py is shared with the other suites.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ports import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "e2e-admin-" + secrets.token_hex(8)
POSTGRES_URL = os.environ.get("GATEHOUSE_TEST_DATABASE_URL", "").strip()
BACKENDS = ["sqlite"] + (["postgres"] if POSTGRES_URL else [])
START_TIMEOUT_S = 60.0
LOG_TAIL_CHARS = 30_000

# What every server gets; a test adds to or overrides it through make_server(**env).
BASE_ENV = {
    "GATEHOUSE_LOG__LEVEL": "info",
    # The same algorithm at a low cost: the suite hashes many passwords on a shared machine.
    "GATEHOUSE_HASHING__ARGON2__MEMORY_KIB": "1024",
    "GATEHOUSE_HASHING__ARGON2__ITERATIONS": "1",
    "GATEHOUSE_HASHING__ARGON2__PARALLELISM": "1",
    # Generous login limits: the lockout test makes many failed logins on one account.
    "GATEHOUSE_AUTH__LOGIN_PER_ACCOUNT__BURST": "1000",
    "GATEHOUSE_AUTH__LOGIN_PER_ACCOUNT__PER_MINUTE": "1000",
    "GATEHOUSE_AUTH__LOGIN_PER_ADDRESS__BURST": "1000",
    "GATEHOUSE_AUTH__LOGIN_PER_ADDRESS__PER_MINUTE": "1000",
    "GATEHOUSE_MAIL__TLS": "none",
    "GATEHOUSE_MAIL__FROM": "gatehouse@example.com",
}



# --------------------------------------------------------------------------------------------
# SMTP


URL_RE = re.compile(r"https?://[^\s<>\"']+")


@dataclass
class Mail:
    recipients: list[str]
    message: email.message.EmailMessage
    text: str = field(init=False)

    def __post_init__(self) -> None:
        body = self.message.get_body(preferencelist=("plain", "html"))
        self.text = body.get_content() if body is not None else ""

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    def links(self) -> list[str]:
        return [link.rstrip(".,;)") for link in URL_RE.findall(self.text)]

    def link_containing(self, fragment: str) -> str:
        found = [link for link in self.links() if fragment in link]
        assert found, f"no link containing {fragment!r} in mail {self.subject!r}:\n{self.text}"
        return found[0]


class Mailbox:
    """aiosmtpd handler that keeps every message and lets tests wait for one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._mails: list[Mail] = []
        self._taken: set[int] = set()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._cond:
            self._mails.append(Mail([r.lower() for r in envelope.rcpt_tos], message))
            self._cond.notify_all()
        return "250 Message accepted for delivery"

    def all(self) -> list[Mail]:
        with self._cond:
            return list(self._mails)

    def wait_for(self, to: str, contains: str | None = None, timeout: float = 20.0) -> Mail:
        """The first mail to `to` (whose text contains `contains`) not returned before."""
        to = to.lower()
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index, mail in enumerate(self._mails):
                    if index in self._taken or to not in mail.recipients:
                        continue
                    if contains is not None and contains not in mail.text:
                        continue
                    self._taken.add(index)
                    return mail
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(m.recipients, m.subject) for m in self._mails]
                    raise AssertionError(
                        f"no mail to {to} containing {contains!r} within {timeout} s; "
                        f"mails received: {seen}"
                    )
                self._cond.wait(remaining)


# --------------------------------------------------------------------------------------------
# PostgreSQL


class PostgresDatabase:
    """A fresh database on the server of GATEHOUSE_TEST_DATABASE_URL, made and dropped with psql."""

    _counter = 0

    def __init__(self, server_url: str) -> None:
        if shutil.which("psql") is None:
            raise RuntimeError("GATEHOUSE_TEST_DATABASE_URL is set but psql is not installed")
        PostgresDatabase._counter += 1
        self.server_url = server_url
        self.name = f"gh_tb_e2e_{os.getpid()}_{PostgresDatabase._counter}_{secrets.token_hex(4)}"
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
        raise RuntimeError(
            f"no gatehouse binary at {path}: run e2e/thingsboard/run or set GATEHOUSE_BIN"
        )
    return path


_RUNNING: list["GatehouseServer"] = []


class GatehouseServer:
    """One gatehouse process with its own SMTP server and database."""

    def __init__(self, backend: str, extra_env: dict[str, str | None], name: str) -> None:
        self.backend = backend
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.admin_password = ADMIN_PASSWORD
        self.dir = Path(tempfile.mkdtemp(prefix="gatehouse-tb-e2e-"))
        self.log_path = self.dir / "server.log"
        self.mailbox = Mailbox()
        self.smtp_port = free_port()
        self.process: subprocess.Popen | None = None
        self.database: PostgresDatabase | None = None
        self._smtp: Controller | None = None
        try:
            self._start(extra_env)
        except BaseException:
            self.stop()
            raise

    def _start(self, extra_env: dict[str, str | None]) -> None:
        self._smtp = Controller(self.mailbox, hostname="127.0.0.1", port=self.smtp_port)
        self._smtp.start()

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
        env.update(BASE_ENV)
        env.update(
            {
                "GATEHOUSE_ADMIN_PASSWORD": self.admin_password,
                "GATEHOUSE_MAIL__HOST": "127.0.0.1",
                "GATEHOUSE_MAIL__PORT": str(self.smtp_port),
                "GATEHOUSE_HTTP__PUBLIC_URL": self.base,
            }
        )
        env.update(extra_env)
        env = {k: v for k, v in env.items() if v is not None}  # None unsets a default
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
        _RUNNING.append(self)

    def _wait_ready(self) -> None:
        http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(total=2.0))
        deadline = time.monotonic() + START_TIMEOUT_S
        last_error = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gatehouse exited with status {self.process.returncode} during start-up; "
                    f"its log:\n{self.read_log()}"
                )
            try:
                response = http.request("GET", self.base + "/healthz")
                if response.status == 200:
                    return
                last_error = f"/healthz answered {response.status}"
            except urllib3.exceptions.HTTPError as error:
                last_error = str(error)
            time.sleep(0.05)
        raise RuntimeError(
            f"gatehouse did not become ready within {START_TIMEOUT_S} s ({last_error}); "
            f"its log:\n{self.read_log()}"
        )

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def read_log(self, offset: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                text = log.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        if len(text) > LOG_TAIL_CHARS:
            text = "…(cut)…\n" + text[-LOG_TAIL_CHARS:]
        return text

    def panics(self) -> list[str]:
        return [line for line in self.read_log().splitlines() if "panicked" in line]

    def stop(self) -> None:
        if self in _RUNNING:
            _RUNNING.remove(self)
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
        finally:
            try:
                if self._smtp is not None:
                    self._smtp.stop()
                    self._smtp = None
            finally:
                try:
                    if self.database is not None:
                        self.database.drop()
                        self.database = None
                finally:
                    shutil.rmtree(self.dir, ignore_errors=True)

    # Clients ---------------------------------------------------------------------------------

    def anonymous(self) -> ThingsboardClient:
        return ThingsboardClient(self.base)

    def admin(self) -> ThingsboardClient:
        return ThingsboardClient(self.base, username="admin", password=self.admin_password)

    def login(self, username: str, password: str) -> ThingsboardClient:
        return ThingsboardClient(self.base, username=username, password=password)


def _finish(server: GatehouseServer) -> None:
    """Stops the server; a panic in its log is a failure even if every answer looked right."""
    exited_early = server.process is not None and server.process.poll() is not None
    panics = server.panics()
    log = server.read_log()
    server.stop()
    if exited_early:
        pytest.fail(f"gatehouse ({server.name}) exited while the tests ran; its log:\n{log}")
    if panics:
        pytest.fail(f"gatehouse ({server.name}) panicked:\n" + "\n".join(panics) + f"\n\n{log}")


# --------------------------------------------------------------------------------------------
# Fixtures

_LOGS = pytest.StashKey[list]()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def server(backend):
    """A server shared by every test of one backend (tests must not change global settings)."""
    shared = GatehouseServer(backend, {}, name=f"shared {backend}")
    yield shared
    _finish(shared)


@pytest.fixture
def make_server(backend, request):
    """Factory: `make_server(**env)` starts a server of the test's own with extra environment
    (a value of None removes a variable the suite sets by default)."""
    started: list[GatehouseServer] = []

    def start(**env) -> GatehouseServer:
        own = GatehouseServer(
            backend,
            {k: None if v is None else str(v) for k, v in env.items()},
            name=f"{request.node.name} #{len(started) + 1}",
        )
        started.append(own)
        request.node.stash.setdefault(_LOGS, []).append((own, 0))
        return own

    yield start
    failures = []
    for own in started:
        try:
            _finish(own)
        except pytest.fail.Exception as failure:
            failures.append(str(failure))
    if failures:
        pytest.fail("\n\n".join(failures))


@pytest.fixture(autouse=True)
def _remember_log_offsets(request):
    """Marks where the running servers' logs stand, so a failure shows what this test caused."""
    request.node.stash[_LOGS] = [(running, running.log_size()) for running in _RUNNING]
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for running, offset in item.stash.get(_LOGS, []):
            report.sections.append((f"gatehouse log ({running.name})", running.read_log(offset)))
