"""Shared fixtures for Moat's end-to-end tests (see docs/testing.md).

The tests drive the real `moat` binary with real MCP clients and servers. Peers (the Python SDK
lines, Node 22, npm packages) are found through environment variables that `scripts/test`
exports. When `MOAT_REQUIRE_PEERS=1` (as `scripts/test` sets it) a missing peer FAILS the test;
otherwise the test is skipped with the reason shown by `pytest -ra`.

Fixtures and helpers:
    moat_bin           path of the `moat` binary (MOAT_BIN, else target/debug/moat)
    free_port          a free TCP port on 127.0.0.1
    demo_http          URL of a `moat demo-server --http` started for the test
    start_demo_http    factory: start_demo_http("--rug-pull") -> URL
    gateway            factory: gateway(upstreams=[...]) or gateway(config_text) -> Gateway
    spawn              factory: start any child process that is always killed afterwards
    python_mcp1/2      interpreters of the SDK 1.x / 2.x virtual environments
    sdk_python         parametrized over both SDK lines (ids `mcp1`, `mcp2`)
    mcp_client         run tests/e2e/clients/mcp_client.py under a given interpreter
    node22, node_modules, run_conformance
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pytest

REPO = Path(__file__).resolve().parents[2]
CLIENTS = Path(__file__).resolve().parent / "clients"
STARTUP_TIMEOUT = 20.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "conformance: runs the MCP conformance suite (Node 22)")


# ---------------------------------------------------------------------------------------------
# Peers


def require_peer(env_var: str, what: str) -> str:
    """The value of `env_var`, which names an installed peer, or a skip (a failure when
    MOAT_REQUIRE_PEERS=1) that says how to get it."""
    value = os.environ.get(env_var, "")
    if value and Path(value).exists():
        return value
    reason = f"{what} not available: set {env_var} (scripts/test installs it from tests/peers/)"
    if os.environ.get("MOAT_REQUIRE_PEERS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def moat_bin() -> str:
    candidates = [os.environ.get("MOAT_BIN", "")]
    target = os.environ.get("CARGO_TARGET_DIR", str(REPO / "target"))
    candidates.append(str(Path(target) / "debug" / "moat"))
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    reason = "the moat binary was not found: run `cargo build` or set MOAT_BIN"
    if os.environ.get("MOAT_REQUIRE_PEERS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def python_mcp1() -> str:
    return require_peer("MOAT_PYTHON_MCP1", "Python with the MCP SDK 1.x")


@pytest.fixture(scope="session")
def python_mcp2() -> str:
    return require_peer("MOAT_PYTHON_MCP2", "Python with the MCP SDK 2.x")


@pytest.fixture(params=["mcp1", "mcp2"])
def sdk_python(request: pytest.FixtureRequest) -> str:
    """The interpreter of each SDK line in turn."""
    return require_peer(f"MOAT_PYTHON_{request.param.upper()}", f"Python with the MCP SDK {request.param}")


@pytest.fixture(scope="session")
def node22() -> str:
    return require_peer("MOAT_NODE22", "Node 22 (npm package node@22)")


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """The node_modules folder of tests/peers/node (reference servers, TS SDK, conformance)."""
    return Path(require_peer("MOAT_NODE_MODULES_NODE", "the npm peers of tests/peers/node"))


# ---------------------------------------------------------------------------------------------
# Processes


def pick_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    return pick_free_port()


@dataclass
class Child:
    """A child process whose stderr goes to a file, shown when a wait fails."""

    process: subprocess.Popen[bytes]
    log_path: Path
    name: str

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        if self.process.poll() is not None:
            return
        # The child leads its own process group, so stdio upstreams it started die with it.
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=5)

    def wait_for_port(self, port: int, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode} before listening on "
                    f"port {port}:\n{self.log()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"{self.name} did not listen on port {port} in {timeout}s:\n{self.log()}")


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Child]]:
    """spawn(argv, name=..., env=..., cwd=...) -> Child; every child is killed at teardown."""
    children: list[Child] = []

    def start(argv: Sequence[str], *, name: str | None = None, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> Child:
        label = name or Path(argv[0]).name
        log_path = tmp_path / f"{label}-{len(children)}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        child = Child(process, log_path, label)
        children.append(child)
        return child

    yield start
    for child in reversed(children):
        child.kill()


# ---------------------------------------------------------------------------------------------
# The demo server and the gateway


def wait_for_mcp(url: str, timeout: float = STARTUP_TIMEOUT) -> None:
    """Waits until `url` answers an HTTP request (any status: the server is up)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=2)
            return
        except urllib.error.HTTPError:
            return  # e.g. 400/405 for a GET without a session: the endpoint answers
        except OSError as error:
            last = error
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer in {timeout}s: {last}")


@pytest.fixture
def start_demo_http(moat_bin: str, spawn: Callable[..., Child]) -> Callable[..., str]:
    """start_demo_http(*flags) starts `moat demo-server --http 127.0.0.1:PORT FLAGS...` and
    returns its endpoint URL once it answers."""

    def start(*flags: str) -> str:
        port = pick_free_port()
        child = spawn([moat_bin, "demo-server", "--http", f"127.0.0.1:{port}", *flags],
                      name="demo-server")
        child.wait_for_port(port)
        url = f"http://127.0.0.1:{port}/mcp"
        wait_for_mcp(url)
        return url

    return start


@pytest.fixture
def demo_http(start_demo_http: Callable[..., str]) -> str:
    """URL of a plain `moat demo-server --http` for this test."""
    return start_demo_http()


@dataclass
class Gateway:
    url: str
    port: int
    config_path: Path
    child: Child

    @property
    def store_url(self) -> str:
        """The `[store] url` of this gateway's configuration (the fixture gives each its own)."""
        found = re.search(r'^\[store\][^\[]*?^url = "([^"]+)"', self.config_path.read_text(), re.M | re.S)
        assert found, "the gateway's configuration has no [store] url"
        return found.group(1)

    def audit_records(self, moat_bin: str) -> list[dict[str, Any]]:
        """Every record of the audit log in this gateway's store (`moat audit query`)."""
        out = subprocess.run([moat_bin, "audit", "query", "--store", self.store_url, "--format", "json"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string is a JSON string for our purposes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def gateway_toml(port: int, path: str, upstreams: Sequence[dict[str, Any]],
                 gateway_keys: dict[str, Any] | None, extra: str) -> str:
    lines = ["[gateway]", f'listen = "127.0.0.1:{port}"', f"path = {toml_value(path)}"]
    for key, value in (gateway_keys or {}).items():
        lines.append(f"{key} = {toml_value(value)}")
    for upstream in upstreams:
        lines += ["", "[[upstream]]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in upstream.items()]
    return "\n".join(lines) + "\n" + (f"\n{extra}\n" if extra else "")


ACCEPT = "application/json, text/event-stream"


def sse_data(body: bytes) -> list[bytes]:
    """The data of each event of an event-stream body that has any (a priming event has none)."""
    out: list[bytes] = []
    for event in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = b"\n".join(line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:"))
        if data.strip():
            out.append(data)
    return out


def rpc_payload(content_type: str, body: bytes) -> bytes:
    """The JSON-RPC message an HTTP answer carries, sent as JSON or as an event stream. On a
    stream (which may open with a priming event of empty data), the response is the message
    with an `id` and a `result` or `error`; without one, the last message."""
    if not content_type.lower().startswith("text/event-stream"):
        return body
    messages = sse_data(body)
    for m in messages:
        try:
            parsed = json.loads(m)
        except ValueError:
            continue
        if isinstance(parsed, dict) and "id" in parsed and ("result" in parsed or "error" in parsed):
            return m
    return messages[-1] if messages else b""


def post(url: str, body: bytes | dict[str, Any], headers: dict[str, str] | None = None,
         method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request to an MCP endpoint, accepting JSON or an event stream as a client
    must; returns the status, the headers (lower-case names) and the JSON-RPC answer."""
    import urllib.error
    import urllib.request
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    h = {"Content-Type": "application/json", "Accept": ACCEPT, **(headers or {})}
    req = urllib.request.Request(url, data=data if method == "POST" else None, headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            got = {k.lower(): v for k, v in resp.headers.items()}
            return resp.status, got, rpc_payload(got.get("content-type", ""), resp.read())
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


@dataclass
class OidcProvider:
    """A running `oidc-provider` (tests/peers/oidc/provider.mjs; its header lists the clients)."""
    issuer: str

    def client_credentials_token(self, client_id: str, secret: str, resource: str, scope: str) -> str:
        """An access token from the token endpoint (RFC 6749 §4.4, RFC 8707 `resource`)."""
        import base64
        import urllib.parse
        import urllib.request
        body = urllib.parse.urlencode({"grant_type": "client_credentials", "resource": resource,
                                       "scope": scope}).encode()
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        req = urllib.request.Request(f"{self.issuer}/token", data=body, method="POST", headers={
            "Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())["access_token"]


@pytest.fixture
def oidc_provider(node22: str) -> Iterator[OidcProvider]:
    """Starts the real authorization server (`oidc-provider`) on a free loopback port. Tokens for
    any `http://127.0.0.1:PORT/...` resource are JWTs with that resource as `aud`."""
    modules = require_peer("MOAT_NODE_MODULES_OIDC", "oidc-provider (npm, tests/peers/oidc)")
    script = REPO / "tests" / "peers" / "oidc" / "provider.mjs"
    # stdin stays open: the provider exits when it closes.
    proc = subprocess.Popen([node22, str(script), "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env={**os.environ, "MOAT_NODE_MODULES": modules})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "oidc-provider exited before printing its issuer"
        yield OidcProvider(issuer=json.loads(line)["issuer"])
    finally:
        proc.kill()
        proc.wait(timeout=5)


@pytest.fixture
def gateway(moat_bin: str, spawn: Callable[..., Child], tmp_path: Path) -> Callable[..., Gateway]:
    """Starts `moat gateway --config <tmp>/moat.toml` and waits until it listens.

    gateway(upstreams=[{"name": "demo", "command": [moat_bin, "demo-server"]}],
            gateway_keys={"allowed_origins": [...]}, extra="[store]\\nurl = \\"memory\\"")
    or gateway(config_text) with `{port}` where the listen port goes. The process (and the
    stdio upstreams it started) is killed at teardown.
    """
    count = 0

    def start(config_text: str | None = None, *, upstreams: Sequence[dict[str, Any]] = (),
              gateway_keys: dict[str, Any] | None = None, extra: str = "", path: str = "/mcp",
              env: dict[str, str] | None = None) -> Gateway:
        nonlocal count
        count += 1
        port = pick_free_port()
        if config_text is None:
            text = gateway_toml(port, path, upstreams, gateway_keys, extra)
        else:
            text = config_text.replace("{port}", str(port))
        if "[admin]" not in text:
            # Each gateway's admin listener on a free port, so gateways never clash.
            text += '\n[admin]\nlisten = "127.0.0.1:0"\n'
        if "[store]" not in text:
            # Each gateway gets its own store, so pins never leak between tests.
            text += f'\n[store]\nurl = "sqlite://{tmp_path}/moat-{count}.db"\n'
        config_path = tmp_path / f"moat-{count}.toml"
        config_path.write_text(text)
        child = spawn([moat_bin, "gateway", "--config", str(config_path)], name="gateway", env=env)
        child.wait_for_port(port)
        return Gateway(url=f"http://127.0.0.1:{port}{path}", port=port, config_path=config_path,
                       child=child)

    return start


# ---------------------------------------------------------------------------------------------
# Clients


@pytest.fixture(scope="session")
def mcp_client() -> Callable[..., dict[str, Any]]:
    """mcp_client(python, ["--http", url] | ["--stdio", cmd, ...], ops) -> the client's JSON.

    Runs tests/e2e/clients/mcp_client.py under `python` (pick the SDK line with
    python_mcp1 / python_mcp2 / sdk_python); see that file for the operations."""

    def run(python: str, target: Sequence[str], ops: Sequence[dict[str, Any]],
            timeout: float = 60) -> dict[str, Any]:
        proc = subprocess.run(
            [python, str(CLIENTS / "mcp_client.py"), *target],
            input=json.dumps(list(ops)).encode(),
            capture_output=True,
            timeout=timeout,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"mcp_client.py failed ({proc.returncode}):\n{proc.stderr.decode(errors='replace')}"
            )
        return json.loads(proc.stdout)

    return run


@dataclass
class ConformanceResult:
    scenarios: dict[str, tuple[int, int]]  # name -> (checks passed, checks failed)
    passed_checks: int
    failed_checks: int
    output: str

    @property
    def failed_scenarios(self) -> list[str]:
        return sorted(n for n, (_, failed) in self.scenarios.items() if failed)

    @property
    def passed_scenarios(self) -> list[str]:
        return sorted(n for n, (_, failed) in self.scenarios.items() if not failed)


SUMMARY_LINE = re.compile(r"^[^\w-]*([a-z0-9][a-z0-9-]*): (\d+) passed, (\d+) failed", re.M)
TOTAL_LINE = re.compile(r"^Total: (\d+) passed, (\d+) failed", re.M)
# What a single-scenario run (`--scenario NAME`) prints instead of a summary.
SINGLE_LINE = re.compile(r"^Passed: (\d+)/\d+, (\d+) failed", re.M)


@pytest.fixture(scope="session")
def run_conformance(node22: str, node_modules: Path, tmp_path_factory: pytest.TempPathFactory
                    ) -> Callable[..., ConformanceResult]:
    """run_conformance(url, suite="all", scenario=None) runs
    `@modelcontextprotocol/conformance server` against `url` and parses its summary."""
    cli = node_modules / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"

    def run(url: str, suite: str = "all", scenario: str | None = None,
            timeout: float = 600) -> ConformanceResult:
        workdir = tmp_path_factory.mktemp("conformance")
        argv = [node22, str(cli), "server", "--url", url, "-o", str(workdir / "results")]
        argv += ["--scenario", scenario] if scenario else ["--suite", suite]
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, cwd=workdir)
        output = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
        if scenario and (single := SINGLE_LINE.search(output)):
            passed, failed = int(single[1]), int(single[2])
            return ConformanceResult({scenario: (passed, failed)}, passed, failed, output)
        summary = output.split("=== SUMMARY ===")[-1]
        scenarios = {m[1]: (int(m[2]), int(m[3])) for m in SUMMARY_LINE.finditer(summary)}
        total = TOTAL_LINE.search(summary)
        if not scenarios or total is None:
            raise AssertionError(f"no conformance summary (exit {proc.returncode}):\n{output[-4000:]}")
        return ConformanceResult(scenarios, int(total[1]), int(total[2]), output)

    return run
