"""No token passthrough with Moat's own OAuth credentials, end to end: the gateway fronts an HTTP
MCP server (official Python SDK, an OAuth resource server that verifies JWTs against the real
`oidc-provider`'s JWKS, audience = its own URL) and obtains its own access token from that
provider (`[upstream.oauth]`, client credentials). The caller's API key never reaches it; a token
the upstream stops accepting is replaced and the call retried."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from test_auth import INIT, create_key, post

REPO = Path(__file__).resolve().parents[2]
SERVERS = Path(__file__).resolve().parent / "servers"
PROVIDER = REPO / "tests" / "peers" / "oidc" / "provider.mjs"
# What the gateway's own callers' tokens are issued for (token exchange subjects).
GATEWAY_AUDIENCE = "https://moat.test/mcp"


def peer_missing(reason: str) -> None:
    if os.environ.get("MOAT_REQUIRE_PEERS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def oidc_issuer() -> Iterator[str]:
    """Starts tests/peers/oidc/provider.mjs (oidc-provider) on a free loopback port."""
    modules = os.environ.get("MOAT_NODE_MODULES_OIDC") or str(PROVIDER.parent / "node_modules")
    if not (Path(modules) / "oidc-provider" / "package.json").is_file():
        peer_missing("oidc-provider not available: set MOAT_NODE_MODULES_OIDC (scripts/test installs tests/peers/oidc)")
    node = os.environ.get("MOAT_NODE22") or shutil.which("node")
    if not node:
        peer_missing("node not available: set MOAT_NODE22 or put node on PATH")
    # stdin stays open: the provider exits when it closes.
    proc = subprocess.Popen([node, str(PROVIDER), "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env={**os.environ, "MOAT_OIDC_AUDIENCE": GATEWAY_AUDIENCE})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "oidc-provider exited before printing its issuer"
        yield json.loads(line)["issuer"]
    finally:
        proc.kill()
        proc.wait(timeout=5)


@pytest.fixture
def protected_upstream(python_mcp1: str, spawn: Callable[..., Any], free_port: int,
                       oidc_issuer: str) -> str:
    """URL of an MCP server that requires a token from the provider for its own URL."""
    child = spawn([python_mcp1, str(SERVERS / "oauth_protected_server.py"), str(free_port), oidc_issuer],
                  name="oauth-protected")
    child.wait_for_port(free_port)
    return f"http://127.0.0.1:{free_port}/mcp"


def call(url: str, key: str, sid: str, rid: int, tool: str) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": tool, "arguments": {}}}
    status, _, payload = post(url, body, {"Authorization": f"Bearer {key}", "Mcp-Session-Id": sid})
    assert status == 200, payload
    return json.loads(payload)


def open_session(url: str, key: str) -> str:
    status, headers, payload = post(url, INIT, {"Authorization": f"Bearer {key}"})
    assert status == 200, payload
    sid = headers["mcp-session-id"]
    post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"},
         {"Authorization": f"Bearer {key}", "Mcp-Session-Id": sid})
    return sid


def wait_for_log(child: Any, needle: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = child.log()
        if needle in log:
            return log
        time.sleep(0.1)
    raise AssertionError(f"`{needle}` not in the log within {timeout}s:\n{child.log()}")


def test_gateway_presents_its_own_oauth_token_and_replaces_a_refused_one(
    moat_bin: str, gateway: Callable[..., Any], protected_upstream: str, oidc_issuer: str, tmp_path: Path,
) -> None:
    # Control: the upstream really requires a token.
    status, headers, _ = post(protected_upstream, INIT, {})
    assert status == 401 and headers.get("www-authenticate", "").startswith("Bearer"), status
    keys = tmp_path / "keys.json"
    alice = create_key(moat_bin, keys, "alice")
    (tmp_path / "upstream-secret").write_text("moat-upstream-secret\n")
    gw = gateway(
        upstreams=[{
            "name": "api", "url": protected_upstream,
            "oauth": {
                "token_url": f"{oidc_issuer}/token", "client_id": "moat-upstream",
                "client_secret": f"file:{tmp_path / 'upstream-secret'}", "scope": "mcp:read",
            },
        }],
        extra=f'[auth]\nmode = "api_key"\napi_keys_file = "{keys}"\n',
    )
    sid = open_session(gw.url, alice)
    first = call(gw.url, alice, sid, 2, "whoami")
    seen = json.loads(first["result"]["content"][0]["text"])
    # Moat's own token: its client, and the upstream's URL as audience (the default resource).
    assert seen["sub"] == "moat-upstream" and seen["client_id"] == "moat-upstream", seen
    assert seen["aud_is_this_server"] is True, seen
    assert alice not in json.dumps(first)
    # The same token serves the next call (cached).
    again = json.loads(call(gw.url, alice, sid, 3, "whoami")["result"]["content"][0]["text"])
    assert again["jti"] == seen["jti"]
    # The upstream stops accepting it: the gateway gets 401, drops it, gets a new one, retries.
    revoked = json.loads(call(gw.url, alice, sid, 4, "revoke_my_token")["result"]["content"][0]["text"])
    assert revoked["revoked"] == seen["jti"]
    after = call(gw.url, alice, sid, 5, "whoami")
    assert "result" in after, after
    fresh = json.loads(after["result"]["content"][0]["text"])
    assert fresh["jti"] != seen["jti"] and fresh["sub"] == "moat-upstream", fresh
    log = gw.child.log()
    assert "upstream refused Moat's credential" in log
    # Neither the client secret nor any token is in the gateway's log.
    assert "moat-upstream-secret" not in log and "eyJ" not in log and alice not in log


def test_a_wrong_client_secret_is_reported_with_advice(
    gateway: Callable[..., Any], protected_upstream: str, oidc_issuer: str, tmp_path: Path,
) -> None:
    gw = gateway(
        upstreams=[{
            "name": "api", "url": protected_upstream,
            "oauth": {"token_url": f"{oidc_issuer}/token", "client_id": "moat-upstream",
                      "client_secret": "env:MOAT_TEST_UPSTREAM_SECRET"},
        }],
        env={"MOAT_TEST_UPSTREAM_SECRET": "not-the-secret"},
    )
    log = wait_for_log(gw.child, "invalid_client")
    assert "refused client `moat-upstream`" in log and "client_secret" in log, log
    assert "not-the-secret" not in log
