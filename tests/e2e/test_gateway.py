"""`moat gateway` and `moat wrap` as a faithful MCP proxy, driven by real clients (Python SDK
1.x and 2.x) in front of real servers (`moat demo-server`, `@modelcontextprotocol/server-everything`),
plus the transport rules of MCP 2025-11-25 checked on the wire."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import post

CLIENTS = Path(__file__).resolve().parent / "clients"
DEMO_TOOLS = {"echo", "add", "get_weather", "read_document", "lookup_customer", "ping_host"}
# What the gateway serves of them: `get_weather`'s description is poisoned, so it is quarantined.
SERVED_DEMO_TOOLS = DEMO_TOOLS - {"get_weather"}


def ok(result: dict[str, Any]) -> Any:
    assert "error" not in result, result["error"]
    return result["ok"]


def texts(call_result: dict[str, Any]) -> list[str]:
    return [c["text"] for c in call_result["content"] if c["type"] == "text"]


def everything(node_modules: Path) -> dict[str, Any]:
    """server-everything as a sandboxed stdio upstream: it may read its own package."""
    script = node_modules / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
    return {"name": "everything", "command": ["node", str(script), "stdio"], "sandbox": {"read": [str(node_modules)]}}


# ---------------------------------------------------------------------------------------------
# Real clients through the gateway


@pytest.mark.parametrize("upstream_kind", ["stdio", "http"])
def test_sdk_client_through_gateway_to_demo_server(
    upstream_kind: str, sdk_python: str, moat_bin: str, gateway: Callable[..., Any],
    start_demo_http: Callable[..., str], mcp_client: Callable[..., dict[str, Any]],
) -> None:
    if upstream_kind == "stdio":
        upstream = {"name": "demo", "command": [moat_bin, "demo-server"]}
    else:
        upstream = {"name": "demo", "url": start_demo_http()}
    gw = gateway(upstreams=[upstream])
    text = "x" * 1024 + " \"quoted\" ünïcödé \n line"
    out = mcp_client(sdk_python, ["--http", gw.url], [
        {"op": "list_tools"},
        {"op": "call_tool", "name": "echo", "arguments": {"text": text}},
        {"op": "call_tool", "name": "add", "arguments": {"a": 2, "b": 40}},
        {"op": "list_resources"},
        {"op": "read_resource", "uri": "demo://notes/welcome"},
        {"op": "list_prompts"},
        {"op": "get_prompt", "name": "summarize", "arguments": {"text": "Moat guards MCP."}},
        {"op": "call_tool", "name": "no_such_tool", "arguments": {}},
        {"op": "ping"},
    ])
    r = out["results"]
    assert out["protocol_version"] == "2025-11-25"
    assert out["handshake"] == "initialize", "2.x clients must fall back from server/discover"
    # With one upstream, names are unchanged and the server's identity shows through.
    assert {t["name"] for t in ok(r[0])["tools"]} == SERVED_DEMO_TOOLS
    assert texts(ok(r[1])) == [text]
    assert "42" in texts(ok(r[2]))[0]
    assert any(res["uri"] == "demo://notes/welcome" for res in ok(r[3])["resources"])
    assert ok(r[4])["contents"][0]["uri"] == "demo://notes/welcome"
    assert any(p["name"] == "summarize" for p in ok(r[5])["prompts"])
    assert ok(r[6])["messages"]
    assert "error" in r[7] or ok(r[7]).get("isError"), "an unknown tool must be refused"
    assert "error" not in r[8]


def test_two_upstreams_are_aggregated_under_namespaced_names(
    python_mcp1: str, moat_bin: str, node_modules: Path, gateway: Callable[..., Any],
    mcp_client: Callable[..., dict[str, Any]],
) -> None:
    gw = gateway(upstreams=[
        {"name": "demo", "command": [moat_bin, "demo-server"]},
        everything(node_modules),
    ])
    out = mcp_client(python_mcp1, ["--http", gw.url], [
        {"op": "list_tools"},
        {"op": "call_tool", "name": "demo__echo", "arguments": {"text": "from demo"}},
        {"op": "call_tool", "name": "everything__echo", "arguments": {"message": "from everything"}},
        {"op": "call_tool", "name": "echo", "arguments": {"text": "bare names are gone"}},
        {"op": "list_prompts"},
    ])
    r = out["results"]
    names = {t["name"] for t in ok(r[0])["tools"]}
    assert {f"demo__{t}" for t in SERVED_DEMO_TOOLS} <= names
    assert "everything__echo" in names and "everything__get-sum" in names
    assert not any("__" not in n for n in names), names
    assert texts(ok(r[1])) == ["from demo"]
    assert "from everything" in texts(ok(r[2]))[0]
    assert "error" in r[3] or ok(r[3]).get("isError")
    prompts = {p["name"] for p in ok(r[4])["prompts"]}
    assert "demo__summarize" in prompts
    assert out["server_info"]["name"] == "moat"


def test_rug_pull_notification_reaches_the_client_through_the_gateway(
    sdk_python: str, moat_bin: str, gateway: Callable[..., Any], mcp_client: Callable[..., dict[str, Any]],
) -> None:
    gw = gateway(upstreams=[{"name": "demo", "command": [moat_bin, "demo-server", "--rug-pull"]}])
    out = mcp_client(sdk_python, ["--http", gw.url], [
        {"op": "list_tools"},
        {"op": "wait_notification", "method": "notifications/tools/list_changed", "timeout": 10},
        {"op": "list_tools"},
    ])
    r = out["results"]
    assert ok(r[1]) is True, f"no list_changed notification; got {out['notifications']}"
    assert "add" in {t["name"] for t in ok(r[0])["tools"]}
    # The changed definition is caught by pinning and withheld (tests/e2e/test_guards.py).
    assert "add" not in {t["name"] for t in ok(r[2])["tools"]}


def test_sampling_and_elicitation_round_trip_through_the_gateway(
    python_mcp1: str, node_modules: Path, gateway: Callable[..., Any],
) -> None:
    gw = gateway(upstreams=[everything(node_modules)])
    proc = subprocess.run(
        [python_mcp1, str(CLIENTS / "roundtrip_client.py"), gw.url, "trigger-sampling-request", "trigger-elicitation-request"],
        capture_output=True, timeout=90,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    out = json.loads(proc.stdout)
    # The upstream's request reached this client...
    assert out["seen"]["sampling"], out
    assert "Say hello" in json.dumps(out["seen"]["sampling"][0]["messages"])
    assert out["seen"]["elicitation"], out
    # ...and the client's answer reached the upstream, which put it in its result.
    assert "a reply from the test's sampling callback" in json.dumps(out["results"]["sampling_result"])
    elicited = json.dumps(out["results"]["elicitation_result"])
    assert "accept" in elicited.lower() or "Ada" in elicited, elicited


def test_wrap_is_driven_by_the_python_sdk_stdio_client(
    sdk_python: str, moat_bin: str, mcp_client: Callable[..., dict[str, Any]],
) -> None:
    out = mcp_client(sdk_python, ["--stdio", moat_bin, "wrap", "--", moat_bin, "demo-server"], [
        {"op": "list_tools"},
        {"op": "call_tool", "name": "echo", "arguments": {"text": "through wrap"}},
        {"op": "read_resource", "uri": "demo://notes/welcome"},
    ])
    r = out["results"]
    assert {t["name"] for t in ok(r[0])["tools"]} == SERVED_DEMO_TOOLS
    assert texts(ok(r[1])) == ["through wrap"]
    assert ok(r[2])["contents"]


def test_a_crashed_stdio_upstream_is_restarted(
    python_mcp1: str, moat_bin: str, gateway: Callable[..., Any], mcp_client: Callable[..., dict[str, Any]],
) -> None:
    gw = gateway(upstreams=[{"name": "demo", "command": [moat_bin, "demo-server"]}])
    first = mcp_client(python_mcp1, ["--http", gw.url], [{"op": "call_tool", "name": "echo", "arguments": {"text": "a"}}])
    assert texts(ok(first["results"][0])) == ["a"]
    children = subprocess.run(["pgrep", "-P", str(gw.child.process.pid)], capture_output=True, text=True).stdout.split()
    assert children, "the gateway should have started the demo server as a child"
    for pid in children:
        os.kill(int(pid), signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:
        out = mcp_client(python_mcp1, ["--http", gw.url], [{"op": "call_tool", "name": "echo", "arguments": {"text": "b"}}])
        res = out["results"][0]
        if "ok" in res and texts(res["ok"]) == ["b"]:
            break
        assert time.monotonic() < deadline, f"upstream was not restarted: {res}\n{gw.child.log()}"
        time.sleep(0.5)
    assert "restarting" in gw.child.log()


# ---------------------------------------------------------------------------------------------
# The transport rules, on the wire

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "wire-test", "version": "1"}}}


def open_session(url: str, version: str = "2025-11-25") -> str:
    body = dict(INIT, params=dict(INIT["params"], protocolVersion=version))
    status, headers, payload = post(url, body)
    assert status == 200, payload
    assert json.loads(payload)["result"]["protocolVersion"] == version
    sid = headers["mcp-session-id"]
    assert len(sid) >= 22 and all(0x21 <= ord(c) <= 0x7E for c in sid)
    post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, {"Mcp-Session-Id": sid})
    return sid


def error_of(payload: bytes) -> dict[str, Any]:
    return json.loads(payload)["error"]


@pytest.fixture
def demo_gateway(moat_bin: str, gateway: Callable[..., Any]) -> Any:
    return gateway(upstreams=[{"name": "demo", "command": [moat_bin, "demo-server"]}],
                   gateway_keys={"max_body_bytes": 65536, "max_json_depth": 16})


def test_sessions_and_versions_follow_the_spec(demo_gateway: Any, moat_bin: str) -> None:
    url = demo_gateway.url
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}}
    status, _, payload = post(url, call)
    assert status == 400 and "Mcp-Session-Id" in error_of(payload)["message"]
    status, _, payload = post(url, call, {"Mcp-Session-Id": "not-a-session"})
    assert status == 404
    sid = open_session(url)
    status, _, payload = post(url, call, {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2024-01-01"})
    assert status == 400 and "2024-01-01" in error_of(payload)["message"]
    status, _, payload = post(url, call, {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"})
    assert status == 200 and json.loads(payload)["result"]["content"][0]["text"] == "x"
    # Older clients are negotiated to their own revision.
    assert open_session(url, "2025-06-18")
    assert open_session(url, "2025-03-26")
    # DELETE ends the session; afterwards it is unknown.
    status, _, _ = post(url, b"", {"Mcp-Session-Id": sid}, method="DELETE")
    assert status in (200, 204)
    status, _, _ = post(url, call, {"Mcp-Session-Id": sid})
    assert status == 404
    # The audit log shows the session's life: opened, then closed by its client.
    mine = [r for r in demo_gateway.audit_records(moat_bin) if r.get("session") == sid[:8]]
    assert [r["reason"] for r in mine if r.get("reason", "").startswith("session_")] == [
        "session_opened", "session_closed"], mine


def test_bad_input_gets_a_clear_error_and_others_carry_on(demo_gateway: Any) -> None:
    url = demo_gateway.url
    sid = open_session(url)
    hdr = {"Mcp-Session-Id": sid}
    cases = [
        (b"{not json", 400, -32700, "malformed JSON"),
        (b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', 400, -32600, "batches"),
        (b'{"jsonrpc":"2.0","id":1,"method":"\xff\xfe"}', 400, -32700, "UTF-8"),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":' + b'{"a":' * 40 + b"1" + b"}" * 41, 400, -32700, "deeper"),
        (b'{"jsonrpc":"1.0","id":1,"method":"ping"}', 400, -32600, "jsonrpc"),
        (b'{"jsonrpc":"2.0","id":1,"method":"echo","params":"x"}', 400, -32600, "params"),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' + b"a" * 70000 + b'"}}', 413, None, "limit"),
    ]
    for body, status, code, words in cases:
        got, _, payload = post(url, body, hdr)
        assert got == status, (body[:60], got, payload[:200])
        err = error_of(payload)
        if code is not None:
            assert err["code"] == code, (body[:60], err)
        assert words.lower() in err["message"].lower(), (body[:60], err)
    status, _, _ = post(url, b"{}", {**hdr, "Content-Type": "text/plain"})
    assert status == 415
    status, headers, _ = post(url, b"", hdr, method="PUT")
    assert status == 405 and "POST" in headers.get("allow", "")
    # The same session, and a new one, still work.
    call = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "still here"}}}
    for s in (sid, open_session(url)):
        status, _, payload = post(url, call, {"Mcp-Session-Id": s})
        assert status == 200 and json.loads(payload)["result"]["content"][0]["text"] == "still here"


def test_dns_rebinding_is_refused(demo_gateway: Any) -> None:
    url = demo_gateway.url
    status, _, payload = post(url, INIT, {"Origin": "https://evil.example"})
    assert status == 403 and "origin" in error_of(payload)["message"]
    status, _, payload = post(url, INIT, {"Host": "evil.example"})
    assert status == 403 and "host" in error_of(payload)["message"]
    status, _, _ = post(url, INIT, {"Origin": f"http://localhost:{demo_gateway.port}"})
    assert status == 200


def test_server_discover_probe_is_answered_so_clients_fall_back(demo_gateway: Any) -> None:
    status, _, payload = post(demo_gateway.url, {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {}},
                              {"MCP-Protocol-Version": "2026-07-28"})
    assert status == 200
    assert error_of(payload)["code"] == -32601


def test_get_opens_an_event_stream_for_the_session(demo_gateway: Any) -> None:
    url = demo_gateway.url
    sid = open_session(url)
    req = urllib.request.Request(url, headers={"Accept": "text/event-stream", "Mcp-Session-Id": sid}, method="GET")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
    status, _, _ = post(url, b"", {"Mcp-Session-Id": sid, "Accept": "application/json"}, method="GET")
    assert status == 406


def test_unknown_fields_and_meta_pass_through_unchanged(
    python_mcp1: str, moat_bin: str, gateway: Callable[..., Any], start_demo_http: Callable[..., str],
) -> None:
    gw = gateway(upstreams=[{"name": "demo", "command": [moat_bin, "demo-server"]}])
    sid = open_session(gw.url)
    call = {"jsonrpc": "2.0", "id": "abc-1", "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "t"}, "_meta": {"trace": "keep-me"}}}
    status, _, payload = post(gw.url, call, {"Mcp-Session-Id": sid})
    assert status == 200
    resp = json.loads(payload)
    assert resp["id"] == "abc-1", "the client's id comes back, whatever id the upstream saw"
    assert resp["result"]["content"][0]["text"] == "t"


@pytest.mark.parametrize("upstream_kind", ["everything-stdio", "demo-http"])
def test_typescript_sdk_client_through_the_gateway(
    upstream_kind: str, node22: str, node_modules: Path, moat_bin: str, gateway: Callable[..., Any],
    start_demo_http: Callable[..., str],
) -> None:
    if upstream_kind == "everything-stdio":
        gw = gateway(upstreams=[everything(node_modules)])
        tool, args, expected = "echo", {"message": "from typescript"}, "from typescript"
    else:
        gw = gateway(upstreams=[{"name": "demo", "url": start_demo_http()}])
        tool, args, expected = "echo", {"text": "from typescript"}, "from typescript"
    sdk = node_modules / "@modelcontextprotocol" / "sdk" / "dist" / "esm"
    proc = subprocess.run(
        [node22, str(CLIENTS / "ts_client.mjs"), gw.url, tool, json.dumps(args)],
        capture_output=True, timeout=60, env={**os.environ, "MOAT_TS_SDK": str(sdk)},
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    out = json.loads(proc.stdout)
    assert tool in out["tools"]
    assert expected in json.dumps(out["result"]["content"])
    assert not out["result"].get("isError")


# ---------------------------------------------------------------------------------------------
# Resumability (2025-11-25 basic/transports; SEP-1699): a client that loses a POST stream comes
# back with `Last-Event-ID` and gets the rest of that stream, the response included.


def read_events(resp: Any, stop: Callable[[list[dict[str, str]]], bool]) -> list[dict[str, str]]:
    """SSE events from an http.client response, until `stop(events)` or the end of the stream."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    while not stop(events):
        line = resp.fp.readline()
        if not line:
            break
        line = line.decode().rstrip("\r\n")
        if not line:
            if current:
                events.append(current)
            current = {}
        elif not line.startswith(":") and ":" in line:
            field, _, value = line.partition(":")
            current[field] = current.get(field, "") + value.removeprefix(" ")
    return events


def test_a_client_that_loses_its_post_stream_resumes_it_with_last_event_id(
    moat_bin: str, gateway: Callable[..., Any],
) -> None:
    import http.client
    gw = gateway(upstreams=[{"name": "conformance", "command": [moat_bin, "demo-server", "--conformance"]}])
    sid = open_session(gw.url)
    post(gw.url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, {"Mcp-Session-Id": sid})
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "test_tool_with_progress", "arguments": {}, "_meta": {"progressToken": "p-1"}}}
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    conn.request("POST", "/mcp", body=json.dumps(call), headers=headers)
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type", "").startswith("text/event-stream")
    # The priming event (an id, a retry delay, no data), then the first progress notification;
    # then the connection breaks.
    seen = read_events(resp, lambda evs: any(e.get("data") for e in evs))
    assert seen[0]["id"] and seen[0].get("retry") and not seen[0].get("data"), seen
    first = seen[-1]
    assert json.loads(first["data"])["method"] == "notifications/progress", seen
    conn.close()
    time.sleep(0.5)  # the call finishes while the client is away

    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    conn.request("GET", "/mcp", headers={**headers, "Last-Event-ID": first["id"]})
    resp = conn.getresponse()
    assert resp.status == 200
    rest = read_events(resp, lambda evs: any('"id":7' in e.get("data", "") for e in evs))
    conn.close()
    messages = [json.loads(e["data"]) for e in rest]
    # Only what came after the last event seen: the two other progress steps, then the answer.
    assert [m.get("method") for m in messages] == ["notifications/progress", "notifications/progress", None], messages
    assert [m["params"]["progress"] for m in messages[:2]] == [50, 100]
    assert messages[2]["result"]["content"][0]["text"] == "Tool with progress executed successfully"
    stream, _, seq = first["id"].partition(".")
    assert [e["id"] for e in rest] == [f"{stream}.{int(seq) + k}" for k in (1, 2, 3)]
