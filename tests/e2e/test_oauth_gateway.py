"""The gateway as an OAuth 2.1 resource server, end to end, against the real authorization server
(`oidc-provider`) and the official Python SDK's own OAuth client: discovery from the 401, a token
bound to the gateway's URL, step-up on 403 `insufficient_scope` for a tool that needs more, and
refusal of a token issued for anything else. Scope rules (`[[policy.scopes]]`) are also checked
with API keys, whose scopes come from `moat keys create --scope`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Callable

from conftest import OidcProvider, post
from test_auth import INIT, create_key

CLIENTS = Path(__file__).resolve().parent / "clients"
SERVERS = Path(__file__).resolve().parent / "servers"

# `add` needs `mcp:admin` on top of the `mcp:read` every request needs.
SCOPE_RULES = '[[policy.scopes]]\ntool = "add"\nscopes = ["mcp:admin"]\n'


def oauth_gateway(gateway: Callable[..., Any], moat_bin: str, issuer: str) -> Any:
    return gateway(
        upstreams=[{"name": "demo", "command": [moat_bin, "demo-server"]}],
        extra=f'[auth]\nmode = "oauth"\nissuer = "{issuer}"\nrequired_scopes = ["mcp:read"]\n\n{SCOPE_RULES}',
    )


def run_sdk_client(python: str, url: str, issuer: str, scopes: str, ops: list[dict[str, Any]],
                   flow: str = "client_credentials") -> dict[str, Any]:
    client = ["moat-cc", "moat-cc-secret"] if flow == "client_credentials" else ["moat-pkce", "-"]
    out = subprocess.run([python, str(CLIENTS / "oauth_client.py"), url, issuer, *client, scopes, flow],
                         input=json.dumps(ops), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_python_sdk_discovers_gets_a_token_for_the_gateway_and_steps_up(
    moat_bin: str, python_mcp1: str, gateway: Callable[..., Any], oidc_provider: OidcProvider,
) -> None:
    gw = oauth_gateway(gateway, moat_bin, oidc_provider.issuer)
    got = run_sdk_client(python_mcp1, gw.url, oidc_provider.issuer, "mcp:read", [
        {"op": "list_tools"},
        {"op": "call_tool", "name": "echo", "arguments": {"text": "through oauth"}},
        {"op": "call_tool", "name": "add", "arguments": {"a": 2, "b": 40}},
    ])
    tools, echo, add = got["results"]
    assert "ok" in tools and {"echo", "add"} <= {t["name"] for t in tools["ok"]["tools"]}
    assert echo["ok"]["content"][0]["text"] == "through oauth"
    assert add["ok"]["content"][0]["text"].strip() == "42"
    # The first token carried only what the client asked for; the gateway's 403 named the
    # missing scope and the SDK came back with a token that has it.
    scopes = [set((s or "").split()) for s in got["token_scopes"]]
    assert len(scopes) == 2, got["token_scopes"]
    assert "mcp:read" in scopes[0] and "mcp:admin" not in scopes[0]
    assert {"mcp:read", "mcp:admin"} <= scopes[1]
    # The audit log names the OAuth client behind each call, and the refused attempt.
    records = gw.audit_records(moat_bin)
    calls = [r for r in records if r["method"] == "tools/call" and r["decision"] == "allow"]
    assert {r["target"] for r in calls} == {"echo", "add"}
    assert all(r["principal"]["client_id"] == "moat-cc" for r in calls), calls
    # ... and where each request came from, the refusals at the front included.
    refused = [r for r in records if "MOAT-AUTH-002" in r.get("rules", [])]
    assert refused and all(r["source"].startswith("127.0.0.1:") for r in calls + refused), records


def test_python_sdk_authorization_code_flow_with_pkce_signs_in_and_steps_up(
    moat_bin: str, python_mcp1: str, gateway: Callable[..., Any], oidc_provider: OidcProvider,
) -> None:
    """The flow of an interactive client: PKCE, a sign-in and a consent at the authorization
    server, the code exchanged for a token bound to the gateway, and step-up (a second consent)."""
    gw = oauth_gateway(gateway, moat_bin, oidc_provider.issuer)
    got = run_sdk_client(python_mcp1, gw.url, oidc_provider.issuer, "mcp:read", [
        {"op": "call_tool", "name": "echo", "arguments": {"text": "signed in"}},
        {"op": "call_tool", "name": "add", "arguments": {"a": 40, "b": 2}},
    ], flow="authorization_code")
    echo, add = got["results"]
    assert echo["ok"]["content"][0]["text"] == "signed in"
    assert add["ok"]["content"][0]["text"].strip() == "42"
    scopes = [set((s or "").split()) for s in got["token_scopes"]]
    assert len(scopes) == 2 and "mcp:admin" not in scopes[0] and "mcp:admin" in scopes[1], got["token_scopes"]
    assert got["browser_pages"] >= 2, "the user signed in and consented at the authorization server"
    records = gw.audit_records(moat_bin)
    calls = [r for r in records if r["method"] == "tools/call" and r["decision"] == "allow"]
    # The calls are the signed-in user's: `sub` is the login, and the client is the public one.
    assert calls and all(r["principal"]["subject"] == f"oauth:{oidc_provider.issuer}##alice" for r in calls), calls
    assert all(r["principal"]["client_id"] == "moat-pkce" for r in calls), calls
    # The session's opening is a record too: who, from where, with which client software.
    opened = [r for r in records if r["method"] == "initialize"]
    assert len(opened) == 1 and opened[0]["reason"] == "session_opened", opened
    assert opened[0]["principal"]["subject"] == calls[0]["principal"]["subject"]
    assert opened[0]["source"].startswith("127.0.0.1:") and opened[0]["target"] == "mcp", opened


def test_insufficient_scope_is_403_naming_the_scope_and_other_audiences_are_refused(
    moat_bin: str, gateway: Callable[..., Any], oidc_provider: OidcProvider,
) -> None:
    gw = oauth_gateway(gateway, moat_bin, oidc_provider.issuer)
    read_only = oidc_provider.client_credentials_token("moat-cc", "moat-cc-secret", gw.url, "mcp:read")
    status, headers, _ = post(gw.url, INIT, {"Authorization": f"Bearer {read_only}"})
    assert status == 200
    sid = headers["mcp-session-id"]
    auth = {"Authorization": f"Bearer {read_only}", "Mcp-Session-Id": sid}
    post(gw.url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, auth)
    post(gw.url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, auth)
    call_add = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "add", "arguments": {"a": 1, "b": 2}}}
    status, headers, body = post(gw.url, call_add, auth)
    assert status == 403, body
    challenge = headers.get("www-authenticate", "")
    assert 'error="insufficient_scope"' in challenge and "mcp:admin" in challenge, challenge
    assert "resource_metadata=" in challenge
    # The same token may call a tool no rule names.
    call_echo = {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}}
    status, _, body = post(gw.url, call_echo, auth)
    assert status == 200, body
    # A valid token of the same issuer for another resource is never accepted (audience binding).
    other = oidc_provider.client_credentials_token("moat-cc", "moat-cc-secret", "https://other.example/mcp", "mcp:read")
    status, headers, _ = post(gw.url, INIT, {"Authorization": f"Bearer {other}"})
    assert status == 401 and headers.get("www-authenticate", "").startswith("Bearer")


def test_scope_rules_apply_to_api_keys(moat_bin: str, gateway: Callable[..., Any], tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    reader = create_key(moat_bin, keys, "reader", "mcp:read")
    admin = create_key(moat_bin, keys, "admin", "mcp:read", "mcp:admin")
    gw = gateway(
        upstreams=[{"name": "demo", "command": [moat_bin, "demo-server"]}],
        extra=f'[auth]\nmode = "api_key"\napi_keys_file = "{keys}"\n\n{SCOPE_RULES}',
    )
    call_add = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "add", "arguments": {"a": 1, "b": 2}}}
    for key, expected in ((reader, 403), (admin, 200)):
        status, headers, _ = post(gw.url, INIT, {"Authorization": f"Bearer {key}"})
        assert status == 200
        auth = {"Authorization": f"Bearer {key}", "Mcp-Session-Id": headers["mcp-session-id"]}
        post(gw.url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, auth)
        post(gw.url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, auth)
        status, headers, body = post(gw.url, call_add, auth)
        assert status == expected, body
        if expected == 403:
            assert "mcp:admin" in headers.get("www-authenticate", "")


def test_scope_rules_without_authentication_are_a_config_error(moat_bin: str, tmp_path: Path) -> None:
    config = tmp_path / "moat.toml"
    config.write_text(SCOPE_RULES)
    out = subprocess.run([moat_bin, "config", "check", str(config)], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "policy.scopes[0]" in out.stderr and "auth.mode" in out.stderr, out.stderr


def test_a_real_oauth_token_never_reaches_the_upstream_nor_the_logs(
    moat_bin: str, python_mcp1: str, gateway: Callable[..., Any], spawn: Callable[..., Any], free_port: int,
    oidc_provider: OidcProvider, tmp_path: Path,
) -> None:
    """No token passthrough with a real access token: the HTTP upstream (which echoes the headers
    it received) sees Moat's own credential; the token is in no log line and no audit record."""
    upstream = spawn([python_mcp1, str(SERVERS / "header_echo_server.py"), str(free_port)], name="header-echo")
    upstream.wait_for_port(free_port)
    (tmp_path / "upstream-token").write_text("moat-own-upstream-token\n")
    gw = gateway(
        upstreams=[{"name": "echo", "url": f"http://127.0.0.1:{free_port}/mcp",
                    "credential": f"file:{tmp_path / 'upstream-token'}"}],
        extra=f'[auth]\nmode = "oauth"\nissuer = "{oidc_provider.issuer}"\n',
    )
    token = oidc_provider.client_credentials_token("moat-cc", "moat-cc-secret", gw.url, "mcp:read")
    status, headers, _ = post(gw.url, INIT, {"Authorization": f"Bearer {token}"})
    assert status == 200
    auth = {"Authorization": f"Bearer {token}", "Mcp-Session-Id": headers["mcp-session-id"]}
    post(gw.url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, auth)
    post(gw.url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, auth)
    call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
    status, _, payload = post(gw.url, call, auth)
    assert status == 200, payload
    seen = json.loads(json.loads(payload)["result"]["content"][0]["text"])
    assert seen["authorization"] == "Bearer moat-own-upstream-token"
    signature = token.rsplit(".", 1)[-1]
    assert signature not in json.dumps(seen), "the client's token never reaches the upstream"
    assert signature not in gw.child.log() and "moat-own-upstream-token" not in gw.child.log()
    assert signature not in json.dumps(gw.audit_records(moat_bin))
