"""Identity at the gateway, end to end: API-key authentication on every request, sessions bound to
the principal that created them, and no token passthrough — an HTTP upstream receives Moat's own
credential, never the client's."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Callable

from conftest import post

SERVERS = Path(__file__).resolve().parent / "servers"
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "auth-test", "version": "1"}}}


def create_key(moat_bin: str, keys_file: Path, subject: str, *scopes: str) -> str:
    """A new API key for `subject` in `keys_file`, with `scopes` (`moat keys create --scope`)."""
    argv = [moat_bin, "keys", "create", "--file", str(keys_file), "--subject", subject]
    for s in scopes:
        argv += ["--scope", s]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.strip().splitlines()[-1].strip()


def test_api_keys_bind_sessions_and_the_upstream_gets_moats_credential(
    moat_bin: str, python_mcp1: str, gateway: Callable[..., Any], spawn: Callable[..., Any], free_port: int,
    tmp_path: Path,
) -> None:
    upstream = spawn([python_mcp1, str(SERVERS / "header_echo_server.py"), str(free_port)], name="header-echo")
    upstream.wait_for_port(free_port)
    keys = tmp_path / "keys.json"
    alice = create_key(moat_bin, keys, "alice")
    mallory = create_key(moat_bin, keys, "mallory")
    (tmp_path / "upstream-token").write_text("moat-own-upstream-token\n")
    gw = gateway(
        upstreams=[{
            "name": "echo", "url": f"http://127.0.0.1:{free_port}/mcp",
            "credential": f"file:{tmp_path / 'upstream-token'}",
            "headers": {"X-Tenant": "team-a"},
        }],
        extra=f'[auth]\nmode = "api_key"\napi_keys_file = "{keys}"\n',
    )
    # No credential, a wrong one: 401 with a challenge.
    status, headers, _ = post(gw.url, INIT, {})
    assert status == 401 and headers.get("www-authenticate", "").startswith("Bearer")
    status, _, _ = post(gw.url, INIT, {"Authorization": "Bearer moat_0000000000000000_" + "0" * 64})
    assert status == 401
    # Alice opens a session; Mallory, with a valid key of his own, cannot use it.
    status, headers, _ = post(gw.url, INIT, {"Authorization": f"Bearer {alice}"})
    assert status == 200
    sid = headers["mcp-session-id"]
    post(gw.url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, {"Authorization": f"Bearer {alice}", "Mcp-Session-Id": sid})
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
    status, _, _ = post(gw.url, call, {"Authorization": f"Bearer {mallory}", "Mcp-Session-Id": sid})
    assert status == 404, "a session id is never a credential: another principal gets 404"
    assert "hijack" in gw.child.log()
    # A session id alone, without the key, is refused.
    status, _, _ = post(gw.url, call, {"Mcp-Session-Id": sid})
    assert status == 401
    status, _, payload = post(gw.url, call, {"Authorization": f"Bearer {alice}", "Mcp-Session-Id": sid})
    assert status == 200, payload
    seen = json.loads(json.loads(payload)["result"]["content"][0]["text"])
    assert seen["authorization"] == "Bearer moat-own-upstream-token"
    assert seen["x-tenant"] == "team-a"
    assert alice not in json.dumps(seen), "the client's token never reaches the upstream"
    # No key appears in the gateway's log.
    log = gw.child.log()
    assert alice not in log and mallory not in log and "moat-own-upstream-token" not in log
    # Every decision, the refusals at the front included, is in the audit log, and no
    # credential is in any record; the chain verifies.
    store = gw.store_url
    records = json.dumps(gw.audit_records(moat_bin))
    assert "MOAT-AUTH-001" in records and "MOAT-SESSION-001" in records, records[:2000]
    assert "whoami" in records
    for secret in (alice, mallory, "moat-own-upstream-token"):
        assert secret not in records
    verify = subprocess.run([moat_bin, "audit", "verify", "--store", store], capture_output=True, text=True, timeout=30)
    assert verify.returncode == 0, verify.stdout + verify.stderr
