"""The performance harness behind bench/run.

Every Gatehouse number is measured next to a baseline that stands for the limit of this
machine, in the same run, on the same cores, and reported as a ratio: absolute numbers on a
shared machine are noise, ratios measured side by side are not.

- The server under test and its baselines run pinned to the first core, the load generator
  (wrk, or bench-rate) to the second, when the machine has two cores or more.
- Throughput is wrk's (closed loop: as fast as the server answers). Latency at a given load is
  bench-rate's (bench/src/bin/bench-rate.rs): open loop at a fixed rate, each latency measured
  from the request's scheduled send time, so queueing behind a slow answer is not hidden.
- Every scenario first sends one request and checks the answer, so a misconfigured run cannot
  measure error pages; a run with non-2xx answers is reported as failed.
- `--quick` (CI's smoke mode) uses the debug build and one-second runs, prints the table and
  writes nothing: it proves the harness still works, not how fast anything is.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "e2e"))
from ports import free_port  # noqa: E402

ADMIN_PASSWORD = "bench-admin-password-1"
DEVICE = "bench-device"
DEVICE_PASSWORD = "bench-device-password-1"
DEVICE_EMAIL = "bench-device@example.com"
# The topic the permission that allows is among the last of the 100 (as in the criterion bench).
PUBLISH_TOPIC = "site/9/line/77/sensor/42/value"
# How long the server is left alone before its idle memory is read (see crates/core/src/hashing.rs
# IDLE_RELEASE, after which argon2 buffers are freed).
IDLE_SECONDS = 3.0
BEGIN_MARK = "<!-- bench/run:begin -->"
END_MARK = "<!-- bench/run:end -->"


def mqtt_permissions() -> list[dict]:
    """100 MQTT permissions as a plant's devices have them (crates/core/benches/permissions.rs)."""
    resources = [f"plant1/line{line}/+/telemetry" for line in range(40)]
    resources += [f"cmd/device{device}/#" for device in range(40)]
    resources += [f"area{area}/+/status/#" for area in range(19)]
    resources.append("site/9/line/77/sensor/+/value")
    return [
        {"resource": resource, "operation": "readWrite" if index % 2 == 0 else "write",
         "context": "mqtt"}
        for index, resource in enumerate(resources)
    ]


# --------------------------------------------------------------------------------------------
# processes


def cores() -> int:
    return len(os.sched_getaffinity(0))


def pinned(command: list[str], core: int) -> list[str]:
    """`command` pinned to `core` when the machine has more than one core."""
    if cores() > 1 and shutil.which("taskset"):
        return ["taskset", "-c", str(core), *command]
    return command


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    base: str
    log: Path

    def rss_kib(self) -> int:
        """Resident memory of the server process (the taskset wrapper execs it)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) if match else 0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_ready(base: str, path: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited early:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(base + path, timeout=2) as answer:
                if answer.status == 200:
                    return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.1)
    raise SystemExit(f"server did not become ready:\n{log.read_text()[-4000:]}")


def start_gatehouse(binary: Path, workdir: Path, hashing: dict,
                    database_url: str | None = None) -> Server:
    port = free_port()
    data = workdir / "gatehouse-data"
    data.mkdir()
    log = workdir / "gatehouse.log"
    env = {
        **os.environ,
        "GATEHOUSE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "GATEHOUSE_LOG__LEVEL": "warn",
        # The load generator is one client address: the login limits would measure themselves.
        "GATEHOUSE_AUTH__LOGIN_PER_ADDRESS__BURST": "0",
        "GATEHOUSE_AUTH__LOGIN_PER_ACCOUNT__BURST": "0",
        "GATEHOUSE_HASHING__WORKERS": str(hashing["workers"]),
        "GATEHOUSE_HASHING__ARGON2__MEMORY_KIB": str(hashing["memory_kib"]),
        "GATEHOUSE_HASHING__ARGON2__ITERATIONS": str(hashing["iterations"]),
        "GATEHOUSE_HASHING__ARGON2__PARALLELISM": str(hashing["parallelism"]),
    }
    if database_url:
        env["GATEHOUSE_DATABASE_URL"] = database_url
    command = [str(binary), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data)]
    return start_server("gatehouse", command, port, "/healthz", log, env)


def start_baseline(binary: Path, workdir: Path) -> Server:
    port = free_port()
    command = [str(binary), "--listen", f"127.0.0.1:{port}"]
    return start_server("baseline", command, port, "/ready", workdir / "baseline.log")


def start_server(name: str, command: list[str], port: int, ready_path: str, log: Path,
                 env: dict | None = None) -> Server:
    """Starts `command` pinned to the server's core, logging to `log`, and waits until
    `ready_path` answers on `port` (stopping it again if it never does)."""
    process = subprocess.Popen(pinned(command, 0), env=env, stdout=log.open("w"),
                               stderr=subprocess.STDOUT)
    server = Server(name, process, f"http://127.0.0.1:{port}", log)
    try:
        wait_ready(server.base, ready_path, process, log)
    except BaseException:
        server.stop()
        raise
    return server


# --------------------------------------------------------------------------------------------
# HTTP


def call(base: str, method: str, path: str, headers: dict | None = None,
         body: dict | None = None) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"content-type": "application/json",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read().decode()
            status = answer.status
    except urllib.error.HTTPError as error:
        text = error.read().decode()
        status = error.code
    try:
        return status, json.loads(text) if text else None
    except json.JSONDecodeError:
        return status, text


def seed(server: Server) -> dict:
    """A device user holding 100 MQTT permissions (and read on /api/session); its tokens."""
    status, admin = call(server.base, "POST", "/api/login",
                         body={"username": "admin", "password": ADMIN_PASSWORD})
    assert status == 200, (status, admin)
    admin_auth = {"authorization": f"Bearer {admin['token']}"}
    permissions = mqtt_permissions() + [
        {"resource": "/api/session", "operation": "read", "context": "http"}]
    status, role = call(server.base, "POST", "/api/roles", admin_auth,
                        {"name": "bench-devices", "permissions": permissions})
    assert status in (200, 201), (status, role)
    status, user = call(server.base, "POST", "/api/users", admin_auth,
                        {"username": DEVICE, "password": DEVICE_PASSWORD, "roles": [role["id"]]})
    assert status in (200, 201), (status, user)
    status, login = call(server.base, "POST", "/api/login",
                         body={"username": DEVICE, "password": DEVICE_PASSWORD})
    assert status == 200, (status, login)
    status, pair = call(server.base, "POST", "/api/auth/login",
                        body={"username": DEVICE, "password": DEVICE_PASSWORD})
    assert status == 200, (status, pair)
    return {"token": login["token"], "pair": pair["token"]}


# --------------------------------------------------------------------------------------------
# wrk


@dataclass
class Load:
    """One request, repeated by wrk; or, with `script`, the Lua script that makes them."""
    method: str
    path: str
    headers: dict = field(default_factory=dict)
    body: dict | None = None
    script: str | None = None

    def lua(self) -> str:
        if self.script is not None:
            return self.script
        lines = [f'wrk.method = "{self.method}"']
        headers = dict(self.headers)
        if self.body is not None:
            headers.setdefault("content-type", "application/json")
            lines.append(f"wrk.body = {json.dumps(json.dumps(self.body))}")
        for name, value in headers.items():
            lines.append(f'wrk.headers["{name}"] = {json.dumps(value)}')
        return "\n".join(lines) + "\n"


@dataclass
class Measured:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0


def duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(base: str, load: Load, seconds: float, connections: int, workdir: Path) -> Measured:
    """Loads `base` with `load` for `seconds` over keep-alive `connections`."""
    script = workdir / "load.lua"
    script.write_text(load.lua())
    command = pinned(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                      "--latency", "-s", str(script), base + load.path], 1)
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if not (rate and p50 and p99):
        raise SystemExit(f"cannot read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                              output)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(group) for group in socket_errors.groups())
    total = re.search(r"(\d+) requests in", output)
    return Measured(float(rate.group(1)), duration_ms(p50.group(1)), duration_ms(p99.group(1)),
                    errors, int(total.group(1)) if total else 0)


@dataclass
class AtRate:
    """What bench-rate measured at a fixed rate."""
    achieved_per_second: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    errors: int


def run_rate(rate_bin: Path, base: str, load: Load, rate: float, seconds: float,
             connections: int) -> AtRate:
    """Sends `load` to `base` at `rate` requests/s for `seconds`, open loop (bench-rate)."""
    if load.script is not None:
        raise ValueError("bench-rate sends one fixed request, not a wrk script")
    headers = dict(load.headers)
    command = [str(rate_bin), "--url", base + load.path, "--method", load.method,
               "--rate", f"{rate:.0f}", "--duration", str(seconds),
               "--connections", str(connections)]
    if load.body is not None:
        headers.setdefault("content-type", "application/json")
        command += ["--body", json.dumps(load.body)]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    done = subprocess.run(pinned(command, 1), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench-rate failed ({done.returncode}):\n{done.stderr}")
    report = json.loads(done.stdout)
    return AtRate(report["achieved_rate"], report["p50_ms"], report["p99_ms"],
                  report["p99_9_ms"], report["max_ms"], report["errors"])


# --------------------------------------------------------------------------------------------
# scenarios


@dataclass
class Row:
    scenario: str
    measured: str
    baseline: str
    ratio: float | None
    target: str
    met: bool | None


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}/s"


def http_scenario(name: str, gatehouse: Server, baseline: Server, load: Load, expect,
                  target_ratio: float, options, workdir: Path) -> tuple[Row, Measured]:
    """Saturation throughput of `load` against the baseline's; the row and Gatehouse's run.
    The baseline answers with Gatehouse's answer to the probe (the same bytes to write), and
    keeps it for the scenarios that follow with the same load (`half_rate_scenario`)."""
    status, answer = call(gatehouse.base, load.method, load.path, load.headers, load.body)
    if status != 200 or not expect(answer):
        raise SystemExit(f"{name}: the probe answered {status} {answer!r}; nothing measured")
    set_baseline_answer(baseline, answer)
    ours = run_wrk(gatehouse.base, load, options.seconds, options.connections, workdir)
    theirs = run_wrk(baseline.base, load, options.seconds, options.connections, workdir)
    if ours.errors or theirs.errors:
        raise SystemExit(f"{name}: {ours.errors} errors (baseline {theirs.errors})")
    ratio = ours.requests_per_second / theirs.requests_per_second
    return Row(name,
               f"{fmt_rate(ours.requests_per_second)}, p50 {ours.p50_ms:.2f} ms, "
               f"p99 {ours.p99_ms:.2f} ms",
               fmt_rate(theirs.requests_per_second), ratio, f"≥ {target_ratio}",
               ratio >= target_ratio), ours


def set_baseline_answer(baseline: Server, answer: object) -> None:
    """Makes the baseline answer every request with `answer` as compact JSON."""
    data = json.dumps(answer, separators=(",", ":")).encode()
    request = urllib.request.Request(baseline.base + "/bench-baseline/answer", data=data,
                                     method="PUT")
    with urllib.request.urlopen(request, timeout=30) as reply:
        if reply.status != 200:
            raise SystemExit(f"the baseline refused its answer: {reply.status}")


def half_rate_scenario(name: str, gatehouse: Server, baseline: Server, load: Load,
                       saturated: Measured, rate_bin: Path, options) -> Row:
    """Latency at half the saturation rate wrk measured for `load`, open loop (bench-rate),
    on Gatehouse and on the baseline at the same rate."""
    rate = saturated.requests_per_second / 2
    ours = run_rate(rate_bin, gatehouse.base, load, rate, options.rate_seconds,
                    options.connections)
    theirs = run_rate(rate_bin, baseline.base, load, rate, options.rate_seconds,
                      options.connections)
    if ours.errors or theirs.errors:
        raise SystemExit(f"{name}: {ours.errors} errors (baseline {theirs.errors})")
    return Row(f"{name} at half the saturation rate ({fmt_rate(rate)}, open loop)",
               f"p50 {ours.p50_ms:.2f} ms, p99 {ours.p99_ms:.2f} ms, "
               f"p99.9 {ours.p999_ms:.2f} ms, max {ours.max_ms:.2f} ms "
               f"(achieved {fmt_rate(ours.achieved_per_second)})",
               f"p50 {theirs.p50_ms:.2f} ms, p99 {theirs.p99_ms:.2f} ms at the same rate",
               None, "p99 < 2 ms", ours.p99_ms < 2.0)


def login_scenario(gatehouse: Server, argon2_bin: Path, hashing: dict, options,
                   workdir: Path) -> tuple[Row, float]:
    """Password logins against raw argon2id verifications; the row and the login rate."""
    load = Load("POST", "/api/login", body={"username": DEVICE, "password": DEVICE_PASSWORD})
    status, answer = call(gatehouse.base, load.method, load.path, load.headers, load.body)
    if status != 200:
        raise SystemExit(f"login: the probe answered {status} {answer!r}")
    # More connections than hashing workers, fewer than the queue limit: the pool stays busy and
    # no request may be refused.
    ours = run_wrk(gatehouse.base, load, options.login_seconds, hashing["workers"] * 4, workdir)
    if ours.errors:
        raise SystemExit(f"login: {ours.errors} requests were refused or failed")
    command = pinned([str(argon2_bin), "--threads", str(hashing["workers"]),
                      "--memory-kib", str(hashing["memory_kib"]),
                      "--iterations", str(hashing["iterations"]),
                      "--parallelism", str(hashing["parallelism"]),
                      "--seconds", str(options.login_seconds)], 0)
    raw = json.loads(subprocess.run(command, capture_output=True, text=True,
                                    check=True).stdout)["per_second"]
    ratio = ours.requests_per_second / raw
    row = Row("password login (`POST /api/login`)",
              f"{fmt_rate(ours.requests_per_second)}, p99 {ours.p99_ms:.0f} ms, 0 refused",
              f"{fmt_rate(raw)} raw argon2id verifications ({hashing['workers']} threads)",
              ratio, "≥ 0.85", ratio >= 0.85)
    return row, ours.requests_per_second


STORM_DEVICES = 10_000
STORM_BATCH = 1000


def storm_device(index: int) -> tuple[str, str]:
    return f"storm-device-{index}", f"storm-pass-{index}"


def rotating_hook_script(hook: str, body_format: str, devices: int) -> str:
    """wrk Lua: one hook request per device in turn, over `devices` devices (each `%d` in
    `body_format` is the device's number)."""
    return (
        "local device = 0\n"
        "request = function()\n"
        f"  device = device % {devices} + 1\n"
        f"  local body = string.format({json.dumps(body_format)}, device, device, device)\n"
        "  return wrk.format(\"POST\", \"/api/broker/vernemq\", "
        f"{{[\"content-type\"] = \"application/json\", [\"vernemq-hook\"] = \"{hook}\"}}, body)\n"
        "end\n")


def storm_scenario(binary: Path, workdir: Path, options) -> Row:
    """The reconnect storm: 10 000 devices with passwords CONNECT again and again
    (`auth_on_register`), after each has connected once; against the same number of cached
    publish checks of the same devices on the same server.

    The first CONNECT of each device verifies its argon2id hash; the storm measures the
    connections after it, which the verified-credential cache answers. So that the 10 000 first
    connections fit the time budget, this server hashes at a low cost (1 MiB, 1 pass); the
    cached path it measures does not hash at all."""
    storm_dir = workdir / "storm"
    storm_dir.mkdir()
    server = start_gatehouse(binary, storm_dir, {"workers": cores(), "memory_kib": 1024,
                                                 "iterations": 1, "parallelism": 1})
    try:
        status, admin = call(server.base, "POST", "/api/login",
                             body={"username": "admin", "password": ADMIN_PASSWORD})
        assert status == 200, (status, admin)
        auth = {"authorization": f"Bearer {admin['token']}"}
        status, role = call(server.base, "POST", "/api/roles", auth,
                            {"name": "storm-devices", "permissions": mqtt_permissions()})
        assert status in (200, 201), (status, role)
        devices = options.storm_devices
        for start in range(1, devices + 1, STORM_BATCH):
            batch = []
            for index in range(start, min(start + STORM_BATCH, devices + 1)):
                name, password = storm_device(index)
                batch.append({"username": name, "password": password, "roles": [role["id"]]})
            status, answer = call(server.base, "POST", "/api/users/batch", auth, batch)
            assert status == 201, (status, answer)

        def register(index: int) -> object:
            name, password = storm_device(index)
            return call(server.base, "POST", "/api/broker/vernemq",
                        {"vernemq-hook": "auth_on_register"},
                        {"peer_addr": "127.0.0.1", "peer_port": 1234, "mountpoint": "",
                         "client_id": f"c{index}", "username": name, "password": password,
                         "clean_session": True})[1]

        # The first connection of every device (these hash).
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(register, range(1, devices + 1)))
        refused = [answer for answer in answers if answer != {"result": "ok"}]
        if refused:
            raise SystemExit(f"storm: {len(refused)} first connections refused: {refused[:3]}")
        register_format = ('{"peer_addr":"127.0.0.1","peer_port":1234,"mountpoint":"",'
                           '"client_id":"c%d","username":"storm-device-%d",'
                           '"password":"storm-pass-%d","clean_session":true}')
        publish_format = ('{"username":"storm-device-%d","client_id":"c%d","mountpoint":"",'
                          '"qos":1,"topic":"site/9/line/77/sensor/%d/value",'
                          '"payload":"aGVsbG8=","retain":false}')
        storm = run_wrk(server.base,
                        Load("POST", "/api/broker/vernemq",
                             script=rotating_hook_script("auth_on_register", register_format,
                                                    devices)),
                        options.seconds, options.connections, workdir)
        cached = run_wrk(server.base,
                         Load("POST", "/api/broker/vernemq",
                              script=rotating_hook_script("auth_on_publish", publish_format,
                                                     devices)),
                         options.seconds, options.connections, workdir)
        if storm.errors or cached.errors:
            raise SystemExit(f"storm: {storm.errors} errors (publish checks {cached.errors})")
        # A sample after the load: the same answers as before it.
        for index in (1, devices // 2, devices):
            if register(index) != {"result": "ok"}:
                raise SystemExit(f"storm: device {index} refused after the storm")
    finally:
        server.stop()
    ratio = storm.requests_per_second / cached.requests_per_second
    return Row(f"broker reconnect storm: {devices:,} devices, `auth_on_register` after their "
               "first CONNECT",
               f"{fmt_rate(storm.requests_per_second)} ({storm.requests:,} CONNECTs), "
               f"p99 {storm.p99_ms:.2f} ms",
               f"{fmt_rate(cached.requests_per_second)} cached publish checks", ratio,
               "≥ 20,000/s", storm.requests_per_second >= 20_000)


POSTGRES_URL = os.environ.get("GATEHOUSE_TEST_DATABASE_URL",
                              "postgres://root@127.0.0.1:5432/test").strip()


def psql(url: str, sql: str) -> None:
    subprocess.run(["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
                   check=True, capture_output=True, text=True)


def postgres_available() -> bool:
    if not shutil.which("psql"):
        return False
    try:
        psql(POSTGRES_URL, "SELECT 1")
        return True
    except subprocess.CalledProcessError:
        return False


# Users and roles cloned from a template made through the API, so the rows have exactly the
# stored formats; user i belongs to role i mod R. `{n}` users, `{r}` roles.
SQLITE_SCALE = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {r})
INSERT INTO roles (id, name, is_shared, auto_generated, ldap_group_dn, ms_entra_id_group_ids,
                   owner_user_id, builtin)
SELECT printf('10000000-0000-4000-8000-%012d', i), printf('scale-role-%05d', i), is_shared,
       auto_generated, NULL, ms_entra_id_group_ids, NULL, 0
FROM n, (SELECT * FROM roles WHERE name = 'scale-template');
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})
INSERT INTO users (id, username, password_hash, identity_provider, grant_types, auto_generated,
                   mqtt_publish_prefix, enforce_mfa_enrollment, mfa_enrolled, created_at,
                   updated_at, credentials_enabled, password_changed_at)
SELECT printf('20000000-0000-4000-8000-%012d', i), printf('scale-user-%07d', i), password_hash,
       identity_provider, grant_types, auto_generated, NULL, 0, 0, created_at + i,
       updated_at + i, 1, password_changed_at
FROM n, (SELECT * FROM users WHERE username = 'scale-template');
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})
INSERT INTO user_roles (user_id, role_id)
SELECT printf('20000000-0000-4000-8000-%012d', i),
       printf('10000000-0000-4000-8000-%012d', (i % {r}) + 1) FROM n;
"""

POSTGRES_SCALE = """
INSERT INTO roles (id, name, is_shared, auto_generated, ldap_group_dn, ms_entra_id_group_ids,
                   owner_user_id, builtin)
SELECT '10000000-0000-4000-8000-' || lpad(i::text, 12, '0'), 'scale-role-' || lpad(i::text, 5, '0'),
       t.is_shared, t.auto_generated, NULL, t.ms_entra_id_group_ids, NULL, 0
FROM generate_series(1, {r}) AS i, (SELECT * FROM roles WHERE name = 'scale-template') AS t;
INSERT INTO users (id, username, password_hash, identity_provider, grant_types, auto_generated,
                   mqtt_publish_prefix, enforce_mfa_enrollment, mfa_enrolled, created_at,
                   updated_at, credentials_enabled, password_changed_at)
SELECT '20000000-0000-4000-8000-' || lpad(i::text, 12, '0'), 'scale-user-' || lpad(i::text, 7, '0'),
       t.password_hash, t.identity_provider, t.grant_types, t.auto_generated, NULL, 0, 0,
       t.created_at + i, t.updated_at + i, 1, t.password_changed_at
FROM generate_series(1, {n}) AS i, (SELECT * FROM users WHERE username = 'scale-template') AS t;
INSERT INTO user_roles (user_id, role_id)
SELECT '20000000-0000-4000-8000-' || lpad(i::text, 12, '0'),
       '10000000-0000-4000-8000-' || lpad(((i % {r}) + 1)::text, 12, '0')
FROM generate_series(1, {n}) AS i;
"""


def scale_scenarios(engine: str, binary: Path, hashing: dict, small_login: float,
                    workdir: Path, options) -> list[Row]:
    """Listing pages and logins with `options.scale_users` users in `options.scale_roles`
    roles, seeded by SQL from API-made templates, on `engine`; and the memory it takes."""
    users, roles = options.scale_users, options.scale_roles
    scale_dir = workdir / f"scale-{engine}"
    scale_dir.mkdir()
    database_url = None
    database = None
    if engine == "postgres":
        database = f"gatehouse_bench_{os.getpid()}"
        psql(POSTGRES_URL, f'CREATE DATABASE "{database}"')
        database_url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + database
    try:
        server = start_gatehouse(binary, scale_dir, hashing, database_url)
    except BaseException:
        if database:
            psql(POSTGRES_URL, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        raise
    try:
        status, admin = call(server.base, "POST", "/api/login",
                             body={"username": "admin", "password": ADMIN_PASSWORD})
        assert status == 200, (status, admin)
        auth = {"authorization": f"Bearer {admin['token']}"}
        status, role = call(server.base, "POST", "/api/roles", auth,
                            {"name": "scale-template", "permissions": mqtt_permissions()[:1]})
        assert status in (200, 201), (status, role)
        status, user = call(server.base, "POST", "/api/users", auth,
                            {"username": "scale-template", "password": DEVICE_PASSWORD,
                             "roles": [role["id"]]})
        assert status in (200, 201), (status, user)
        started = time.monotonic()
        if engine == "sqlite":
            import sqlite3
            connection = sqlite3.connect(scale_dir / "gatehouse-data" / "gatehouse.db",
                                         timeout=60)
            connection.executescript("BEGIN;" + SQLITE_SCALE.format(n=users, r=roles) +
                                     "COMMIT; ANALYZE;")
            connection.close()
        else:
            psql(database_url, POSTGRES_SCALE.format(n=users, r=roles))
            # Statistics, and the visibility map that index-only scans rely on (what autovacuum
            # would do after a bulk load; VACUUM cannot run in the seed's transaction).
            psql(database_url, "VACUUM ANALYZE")
        seeded_s = time.monotonic() - started
        page = max(1, users // 20 // 2)
        list_users = run_wrk(server.base, Load(
            "GET", f"/api/listUsers?pageNumber={page}&rowsPerPage=20", auth),
            options.seconds, 1, workdir)
        roles_page = run_wrk(server.base, Load(
            "GET", f"/api/roles/page?pageNumber={max(1, roles // 20 // 2)}&rowsPerPage=20",
            auth), options.seconds, 1, workdir)
        if list_users.errors or roles_page.errors:
            raise SystemExit(f"scale {engine}: {list_users.errors} + {roles_page.errors} errors")
        login = run_wrk(server.base, Load(
            "POST", "/api/login",
            body={"username": "scale-user-0000001", "password": DEVICE_PASSWORD}),
            options.login_seconds, hashing["workers"] * 4, workdir)
        if login.errors:
            raise SystemExit(f"scale {engine}: {login.errors} logins failed")
        rss = server.rss_kib()
    finally:
        server.stop()
        if database:
            psql(POSTGRES_URL, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    label = f"{users:,} users, {roles:,} roles, {engine}"
    login_ratio = login.requests_per_second / small_login
    return [
        Row(f"scale ({label}): `GET /api/listUsers`, a middle page of 20, one client",
            f"p50 {list_users.p50_ms:.1f} ms, p99 {list_users.p99_ms:.1f} ms "
            f"(seeded by SQL in {seeded_s:.0f} s)",
            "—", None, "p99 < 50 ms", list_users.p99_ms < 50),
        Row(f"scale ({label}): `GET /api/roles/page`, a middle page of 20, one client",
            f"p50 {roles_page.p50_ms:.1f} ms, p99 {roles_page.p99_ms:.1f} ms",
            "—", None, "p99 < 50 ms", roles_page.p99_ms < 50),
        Row(f"scale ({label}): password login",
            fmt_rate(login.requests_per_second),
            f"{fmt_rate(small_login)} on the small database", login_ratio, "≥ 0.85 (unaffected)",
            login_ratio >= 0.85),
        Row(f"scale ({label}): resident memory after the runs", f"{rss / 1024:.1f} MiB", "—",
            None, "< 150 MiB", rss < 150 * 1024),
    ]


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    except (OSError, AttributeError):
        pass
    return (f"{cores()} cores ({model}){memory}, {platform.system()} {platform.release()}; "
            f"server and baselines pinned to core 0, wrk to core 1" if cores() > 1 else
            f"1 core ({model}){memory}; no pinning")


def table(rows: list[Row]) -> str:
    lines = ["| Scenario | Gatehouse | Baseline (same run) | Ratio | Target | Met |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else "—"
        met = {True: "yes", False: "**no**", None: "—"}[row.met]
        lines.append(f"| {row.scenario} | {row.measured} | {row.baseline} | {ratio} | "
                     f"{row.target} | {met} |")
    return "\n".join(lines)


def write_benchmarks(rows: list[Row], options) -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip() or "unknown"
    section = "\n".join([
        BEGIN_MARK,
        "## Hot paths, login, reconnect storm, scale and memory (`bench/run`)",
        "",
        f"Measured {datetime.date.today().isoformat()} at commit `{commit}` on {machine()}. "
        f"wrk with {options.connections} keep-alive connections, {options.seconds:.0f} s per "
        "run; latency at half the saturation rate by bench-rate (open loop at a fixed rate, "
        "latency from each request's scheduled send time, the same connections, "
        f"{options.rate_seconds:.0f} s per run); release build.",
        "",
        table(rows),
        END_MARK,
    ])
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text()
    if BEGIN_MARK in text and END_MARK in text:
        start = text.index(BEGIN_MARK)
        end = text.index(END_MARK) + len(END_MARK)
        text = text[:start] + section + text[end:]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke mode: debug build, one-second runs, nothing written")
    parser.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", "target"))
    options = parser.parse_args()
    profile = "debug" if options.quick else "release"
    options.seconds = 1.0 if options.quick else 10.0
    options.login_seconds = 1.0 if options.quick else 10.0
    # bench-rate's fixed-rate runs (four of them); in quick mode only long enough to prove it runs.
    options.rate_seconds = 0.3 if options.quick else 10.0
    options.connections = 16
    options.storm_devices = 1000 if options.quick else STORM_DEVICES
    options.scale_users = 10_000 if options.quick else 1_000_000
    options.scale_roles = 100 if options.quick else 10_000
    target = Path(options.target_dir)
    if not target.is_absolute():
        target = ROOT / target
    binaries = target / profile
    hashing = {"workers": cores(), "memory_kib": 19 * 1024, "iterations": 2, "parallelism": 1}
    if options.quick:
        hashing.update(memory_kib=1024, iterations=1)

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-") as scratch:
        workdir = Path(scratch)
        gatehouse = start_gatehouse(binaries / "gatehouse", workdir, hashing)
        try:
            baseline = start_baseline(binaries / "bench-baseline", workdir)
        except BaseException:
            gatehouse.stop()
            raise
        try:
            # Idle: past the start-up's work, including the admin's first password hash, whose
            # argon2 memory is kept for IDLE_RELEASE (2 s, crates/core/src/hashing.rs).
            time.sleep(IDLE_SECONDS)
            idle_kib = gatehouse.rss_kib()
            tokens = seed(gatehouse)
            publish = {"username": DEVICE, "client_id": "bench-1", "mountpoint": "", "qos": 1,
                       "topic": PUBLISH_TOPIC, "payload": "aGVsbG8=", "retain": False}
            name = "broker publish check, VerneMQ `auth_on_publish` (100 permissions)"
            load = Load("POST", "/api/broker/vernemq", {"vernemq-hook": "auth_on_publish"},
                        publish)
            row, saturated = http_scenario(
                name, gatehouse, baseline, load,
                lambda answer: isinstance(answer, dict) and answer.get("result") == "ok",
                0.7, options, workdir)
            rows.append(row)
            rows.append(half_rate_scenario(name, gatehouse, baseline, load, saturated,
                                           binaries / "bench-rate", options))
            acl = {"username": DEVICE, "clientid": "bench-1", "topic": PUBLISH_TOPIC, "acc": 2}
            name = "broker publish check, go-auth `acl` (100 permissions)"
            load = Load("POST", "/api/broker/http/acl", body=acl)
            row, saturated = http_scenario(
                name, gatehouse, baseline, load,
                lambda answer: isinstance(answer, dict) and answer.get("ok") is True,
                0.7, options, workdir)
            rows.append(row)
            rows.append(half_rate_scenario(name, gatehouse, baseline, load, saturated,
                                           binaries / "bench-rate", options))
            rows.append(http_scenario(
                "token-authenticated call, Connectware `GET /api/session`",
                gatehouse, baseline,
                Load("GET", "/api/session", {"authorization": f"Bearer {tokens['token']}"}),
                lambda answer: isinstance(answer, dict) and answer.get("username") == DEVICE,
                0.5, options, workdir)[0])
            rows.append(http_scenario(
                "token-authenticated call, ThingsBoard `GET /api/auth/user`",
                gatehouse, baseline,
                Load("GET", "/api/auth/user", {"x-authorization": f"Bearer {tokens['pair']}"}),
                lambda answer: isinstance(answer, dict) and bool(answer.get("id")),
                0.5, options, workdir)[0])
            login_row, small_login = login_scenario(gatehouse, binaries / "bench-argon2",
                                                    hashing, options, workdir)
            rows.append(login_row)
            rows.append(storm_scenario(binaries / "gatehouse", workdir, options))
            engines = ["sqlite"] + (["postgres"] if not options.quick and postgres_available()
                                    else [])
            for engine in engines:
                rows.extend(scale_scenarios(engine, binaries / "gatehouse", hashing, small_login,
                                            workdir, options))
            loaded_kib = gatehouse.rss_kib()
            rows.append(Row("resident memory, idle after start", f"{idle_kib / 1024:.1f} MiB",
                            "—", None, "< 40 MiB", idle_kib < 40 * 1024))
            rows.append(Row("resident memory after the runs above", f"{loaded_kib / 1024:.1f} MiB",
                            "—", None, "—", None))
        finally:
            gatehouse.stop()
            baseline.stop()
            if gatehouse.process.returncode not in (0, -signal.SIGTERM, None):
                print(gatehouse.log.read_text()[-4000:], file=sys.stderr)
    print(table(rows))
    if options.quick:
        print("\n(--quick: debug build and one-second runs; the numbers mean nothing, "
              "BENCHMARKS.md is left as it is)")
    else:
        write_benchmarks(rows, options)
        print("\nwritten to BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
