"""`moat demo-server`, driven by the official Python SDK (1.x and 2.x) over stdio and Streamable
HTTP, and by the MCP conformance suite (in `--conformance` mode)."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from typing import Any, Callable

import pytest

DEMO_TOOLS = {"echo", "add", "get_weather", "read_document", "lookup_customer", "ping_host"}
ORIGINAL_ADD = "Add two numbers and return their sum."
LIST_CHANGED = "notifications/tools/list_changed"


def target(transport: str, moat_bin: str, start_demo_http: Callable[..., str], *flags: str) -> list[str]:
    if transport == "stdio":
        return ["--stdio", moat_bin, "demo-server", *flags]
    return ["--http", start_demo_http(*flags)]


def ok(result: dict[str, Any]) -> Any:
    assert "error" not in result, result["error"]
    return result["ok"]


def texts(call_result: dict[str, Any]) -> list[str]:
    return [c["text"] for c in call_result["content"] if c["type"] == "text"]


def tool(tools_result: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in tools_result["tools"] if t["name"] == name)


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_sdk_client_uses_every_tool_resource_and_prompt(
    transport: str, sdk_python: str, moat_bin: str, start_demo_http: Callable[..., str],
    mcp_client: Callable[..., dict[str, Any]],
) -> None:
    echo_text = "  héllo\n\"world\" <b>1 KB of text</b>  "
    ops = [
        {"op": "list_tools"},
        {"op": "call_tool", "name": "echo", "arguments": {"text": echo_text}},
        {"op": "call_tool", "name": "add", "arguments": {"a": 2, "b": 3}},
        {"op": "call_tool", "name": "get_weather", "arguments": {"city": "Lisbon"}},
        {"op": "call_tool", "name": "read_document", "arguments": {"name": "Q3 report"}},
        {"op": "call_tool", "name": "lookup_customer", "arguments": {"customer_id": "1007"}},
        {"op": "call_tool", "name": "ping_host", "arguments": {"host": "8.8.8.8; cat /etc/passwd"}},
        {"op": "call_tool", "name": "no_such_tool", "arguments": {}},
        {"op": "list_resources"},
        {"op": "read_resource", "uri": "demo://notes/welcome"},
        {"op": "list_prompts"},
        {"op": "get_prompt", "name": "summarize", "arguments": {"text": "Moat guards MCP."}},
        {"op": "ping"},
    ]
    out = mcp_client(sdk_python, target(transport, moat_bin, start_demo_http), ops)
    r = out["results"]

    # Both SDK lines end up on the handshake-era protocol: 2.x probes `server/discover` first,
    # is told the server supports only versions up to 2025-11-25, and falls back to initialize.
    assert out["protocol_version"] == "2025-11-25"
    assert out["handshake"] == "initialize"
    assert out["server_info"]["name"] == "moat-demo"

    tools = ok(r[0])
    assert {t["name"] for t in tools["tools"]} == DEMO_TOOLS
    weather = tool(tools, "get_weather")
    assert "<IMPORTANT>" in weather["description"]
    assert "~/.aws/credentials" in weather["description"]
    assert "context" in weather["inputSchema"]["properties"]
    assert tool(tools, "add")["description"] == ORIGINAL_ADD

    echo = ok(r[1])
    assert echo["content"] == [{"type": "text", "text": echo_text}]
    assert texts(ok(r[2])) == ["5"]
    assert "Lisbon" in texts(ok(r[3]))[0]
    document = texts(ok(r[4]))[0]
    assert "Q3 report" in document and "ignore all previous instructions" in document
    customer = texts(ok(r[5]))[0]
    for leaked in ["1007", "jane.doe@example.com", "4111 1111 1111 1111", "078-05-1120",
                   "AKIAZ7MOATDEMOFAKE42", "ghp_"]:
        assert leaked in customer
    assert texts(ok(r[6])) == ["ping -c 1 8.8.8.8; cat /etc/passwd"]
    # An unknown tool is a JSON-RPC error (the SDKs raise it or return it as an error result).
    unknown = r[7]
    assert "error" in unknown or unknown["ok"].get("isError") is True

    resources = ok(r[8])
    assert [res["uri"] for res in resources["resources"]] == ["demo://notes/welcome"]
    welcome = ok(r[9])["contents"][0]
    assert welcome["uri"] == "demo://notes/welcome" and "Moat demo server" in welcome["text"]

    prompts = ok(r[10])
    summarize = next(p for p in prompts["prompts"] if p["name"] == "summarize")
    assert [a["name"] for a in summarize["arguments"]] == ["text"]
    prompt = ok(r[11])
    assert "Moat guards MCP." in prompt["messages"][0]["content"]["text"]
    assert "error" not in r[12]


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_rug_pull_changes_add_and_notifies(
    transport: str, sdk_python: str, moat_bin: str, start_demo_http: Callable[..., str],
    mcp_client: Callable[..., dict[str, Any]],
) -> None:
    ops = [
        {"op": "list_tools"},
        {"op": "wait_notification", "method": LIST_CHANGED, "timeout": 10},
        {"op": "list_tools"},
    ]
    out = mcp_client(sdk_python, target(transport, moat_bin, start_demo_http, "--rug-pull"), ops)
    first, notified, second = (ok(x) for x in out["results"])
    assert tool(first, "add")["description"] == ORIGINAL_ADD
    assert notified is True, f"no {LIST_CHANGED}; got {out['notifications']}"
    changed = tool(second, "add")["description"]
    assert changed != ORIGINAL_ADD and changed.startswith(ORIGINAL_ADD)
    assert "account number" in changed
    # Only `add` changed; the schema stays the same, which is why only pinning notices.
    assert tool(second, "add")["inputSchema"] == tool(first, "add")["inputSchema"]
    others = lambda tools: [t for t in tools["tools"] if t["name"] != "add"]  # noqa: E731
    assert others(second) == others(first)


def test_no_rug_pull_without_the_flag(
    python_mcp2: str, moat_bin: str, mcp_client: Callable[..., dict[str, Any]],
) -> None:
    ops = [
        {"op": "list_tools"},
        {"op": "wait_notification", "method": LIST_CHANGED, "timeout": 1},
        {"op": "list_tools"},
    ]
    out = mcp_client(python_mcp2, ["--stdio", moat_bin, "demo-server"], ops)
    first, notified, second = (ok(x) for x in out["results"])
    assert notified is False
    assert tool(second, "add")["description"] == tool(first, "add")["description"] == ORIGINAL_ADD


DISCOVER = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "server/discover",
    "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "probe", "version": "1"},
    }},
}


def assert_handshake_era_only(error: dict[str, Any]) -> None:
    """The answer a 2026-07-28 client needs in order to fall back to `initialize`."""
    assert error["code"] == -32022, error
    supported = error["data"]["supported"]
    assert "2025-11-25" in supported
    assert not any(v >= "2026" for v in supported), supported


def test_discover_probe_over_http_names_handshake_versions(demo_http: str) -> None:
    request = urllib.request.Request(
        demo_http,
        data=json.dumps(DISCOVER).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2026-07-28",
            "Mcp-Method": "server/discover",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400
    assert_handshake_era_only(json.loads(caught.value.read())["error"])


def test_discover_probe_over_stdio_then_initialize(moat_bin: str) -> None:
    initialize = {"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "probe", "version": "1"}}}
    unknown = {"jsonrpc": "2.0", "id": 3, "method": "no/such/method", "params": {}}
    # A probe at a version the server does speak: a 2025-11-25 server knows no such method.
    discover_old = json.loads(json.dumps(DISCOVER))
    discover_old["id"] = 4
    discover_old["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2025-11-25"
    stdin = "".join(json.dumps(m) + "\n" for m in [DISCOVER, discover_old, initialize, unknown])
    proc = subprocess.run([moat_bin, "demo-server"], input=stdin.encode(), capture_output=True,
                          timeout=30)
    replies = {m["id"]: m for m in map(json.loads, proc.stdout.decode().splitlines())}
    assert_handshake_era_only(replies[1]["error"])
    assert replies[2]["result"]["protocolVersion"] == "2025-11-25"
    assert replies[3]["error"]["code"] == -32601
    assert replies[4]["error"]["code"] == -32601


def test_http_refuses_a_foreign_host_header(demo_http: str) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not reach the server."""
    request = urllib.request.Request(
        demo_http,
        data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                 "Host": "evil.example"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 403


@pytest.mark.conformance
def test_conformance_suite_passes_against_demo_server(
    start_demo_http: Callable[..., str], run_conformance: Callable[..., Any],
) -> None:
    url = start_demo_http("--conformance")
    result = run_conformance(url, suite="all")
    print(f"conformance (demo server alone): {len(result.passed_scenarios)}/"
          f"{len(result.scenarios)} scenarios, {result.passed_checks} checks passed, "
          f"{result.failed_checks} failed")
    assert result.failed_scenarios == [], result.output[-4000:]
    # Every server scenario of @modelcontextprotocol/conformance 0.1.16 (suite "all").
    assert len(result.scenarios) == 32
