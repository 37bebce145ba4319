"""No token passthrough with Moat's own OAuth credentials, end to end: the gateway fronts an HTTP
MCP server (official Python SDK, an OAuth resource server that verifies JWTs against the real
`oidc-provider`'s JWKS, audience = its own URL) and obtains its own access token from that
provider (`[upstream.oauth]`, client credentials). The caller's API key never reaches it; a token
the upstream stops accepting is replaced and the call retried. With `grant = "token_exchange"` each
call carries a token exchanged (RFC 8693) for the caller's OAuth token: the upstream sees the caller
as subject, never the caller's own token."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import OidcProvider, post
from test_auth import INIT, create_key

SERVERS = Path(__file__).resolve().parent / "servers"


@pytest.fixture
def oidc_issuer(oidc_provider: OidcProvider) -> str:
    return oidc_provider.issuer


def start_protected_upstream(python: str, spawn: Callable[..., Any], port: int, issuer: str, *flags: str) -> str:
    child = spawn([python, str(SERVERS / "oauth_protected_server.py"), str(port), issuer, *flags],
                  name="oauth-protected")
    child.wait_for_port(port)
    return f"http://127.0.0.1:{port}/mcp"


@pytest.fixture
def protected_upstream(python_mcp1: str, spawn: Callable[..., Any], free_port: int,
                       oidc_issuer: str) -> str:
    """URL of an MCP server that requires a token from the provider for its own URL."""
    return start_protected_upstream(python_mcp1, spawn, free_port, oidc_issuer)


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


def test_token_exchange_calls_the_upstream_on_behalf_of_the_caller(
    gateway: Callable[..., Any], python_mcp1: str, spawn: Callable[..., Any], free_port: int,
    oidc_provider: OidcProvider,
) -> None:
    oidc_issuer = oidc_provider.issuer
    # Stateless: Moat's one upstream session is opened with its own token, and each call then
    # carries a token for its caller (see docs/gateway.md, `grant = "token_exchange"`).
    protected_upstream = start_protected_upstream(python_mcp1, spawn, free_port, oidc_issuer, "--stateless")
    gw = gateway(
        upstreams=[{
            "name": "api", "url": protected_upstream,
            "oauth": {"token_url": f"{oidc_issuer}/token", "client_id": "moat-upstream",
                      "client_secret": "env:MOAT_TEST_UPSTREAM_SECRET", "scope": "mcp:read",
                      "grant": "token_exchange"},
        }],
        extra=f'[auth]\nmode = "oauth"\nissuer = "{oidc_issuer}"\n',
        env={"MOAT_TEST_UPSTREAM_SECRET": "moat-upstream-secret"},
    )
    # The caller (client `moat-cc`) holds a token for the gateway, not for the upstream.
    caller = oidc_provider.client_credentials_token("moat-cc", "moat-cc-secret", gw.url, "mcp:read")
    status, _, _ = post(protected_upstream, INIT, {"Authorization": f"Bearer {caller}"})
    assert status == 401, "the upstream refuses a token issued for the gateway"
    sid = open_session(gw.url, caller)
    first = call(gw.url, caller, sid, 2, "whoami")
    seen = json.loads(first["result"]["content"][0]["text"])
    # A token for the upstream, naming the caller as subject and Moat's client as the actor.
    assert seen["sub"] == "moat-cc" and seen["client_id"] == "moat-upstream", seen
    assert seen["act"] == {"sub": "moat-upstream"} and seen["aud_is_this_server"] is True, seen
    # Cached for this caller token.
    again = json.loads(call(gw.url, caller, sid, 3, "whoami")["result"]["content"][0]["text"])
    assert again["jti"] == seen["jti"]
    # Another token of the caller is exchanged anew.
    newer = oidc_provider.client_credentials_token("moat-cc", "moat-cc-secret", gw.url, "mcp:read")
    other = json.loads(call(gw.url, newer, sid, 4, "whoami")["result"]["content"][0]["text"])
    assert other["jti"] != seen["jti"] and other["sub"] == "moat-cc", other
    log = gw.child.log()
    assert caller not in log and newer not in log and "moat-upstream-secret" not in log
