"""The runtime guards of issue 6, end to end: pinning against poisoned tools and rug pulls,
argument checks against real servers, output guards on real results, and rate limits."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
from pathlib import Path
from typing import Any, Callable

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVERS = Path(__file__).resolve().parent / "servers"


def ok(result: dict[str, Any]) -> Any:
    assert "error" not in result, result["error"]
    return result["ok"]


def failed(result: dict[str, Any]) -> str:
    """The error text of a refused call (a JSON-RPC error, or an `isError` result)."""
    if "error" in result:
        return result["error"]
    r = result["ok"]
    assert r.get("isError"), f"expected a refusal, got {r}"
    return json.dumps(r)


def texts(call_result: dict[str, Any]) -> str:
    return "\n".join(c["text"] for c in call_result["content"] if c["type"] == "text")


def demo(moat_bin: str, *flags: str) -> dict[str, Any]:
    return {"name": "demo", "command": [moat_bin, "demo-server", *flags]}


def test_poisoned_tool_is_quarantined_and_refused(
    python_mcp2: str, moat_bin: str, gateway: Callable[..., Any], mcp_client: Callable[..., dict[str, Any]],
) -> None:
    gw = gateway(upstreams=[demo(moat_bin)])
    out = mcp_client(python_mcp2, ["--http", gw.url], [
        {"op": "list_tools"},
        {"op": "call_tool", "name": "get_weather", "arguments": {"city": "Lisbon"}},
        {"op": "call_tool", "name": "echo", "arguments": {"text": "fine"}},
    ])
    r = out["results"]
    names = {t["name"] for t in ok(r[0])["tools"]}
    assert "get_weather" not in names and "echo" in names
    err = failed(r[1])
    assert "quarantined" in err and "looks poisoned" in err and "MOAT-TP-" in err, err
    assert texts(ok(r[2])) == "fine"
    assert "quarantine" in gw.child.log()
    # The quarantine is audited once, when the list came in, with the rules that caused it.
    listed = [rec for rec in gw.audit_records(moat_bin)
              if rec["decision"] == "quarantine" and rec["method"] == "tools/list"]
    assert [rec["target"] for rec in listed] == ["get_weather"], listed
    assert any(rule.startswith("MOAT-TP-") for rule in listed[0]["rules"]), listed


def test_rug_pull_is_caught_mid_session_after_restart_and_released_by_approval(
    python_mcp1: str, moat_bin: str, gateway: Callable[..., Any], mcp_client: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    store = f'[store]\nurl = "sqlite://{tmp_path}/pins.db"\n'
    ops = [
        {"op": "list_tools"},
        {"op": "wait_notification", "method": "notifications/tools/list_changed", "timeout": 10},
        {"op": "list_tools"},
        {"op": "call_tool", "name": "add", "arguments": {"a": 1, "b": 2}},
    ]
    for runs, round_ in enumerate(("first run", "after restart"), start=1):
        gw = gateway(upstreams=[demo(moat_bin, "--rug-pull")], extra=store)
        r = mcp_client(python_mcp1, ["--http", gw.url], ops)["results"]
        # The first list is the pinned (first run) or restored (after restart) definition.
        assert "add" in {t["name"] for t in ok(r[0])["tools"]}, round_
        assert ok(r[1]) is True, round_
        assert "add" not in {t["name"] for t in ok(r[2])["tools"]}, f"{round_}: changed `add` must be hidden"
        assert "quarantined" in failed(r[3]), round_
        gw.child.kill()
        # Each run audits the rug pull once, when it saw the changed list (the runs share a store).
        pulled = [rec["rules"] for rec in gw.audit_records(moat_bin)
                  if rec["decision"] == "quarantine" and rec["method"] == "tools/list" and rec["target"] == "add"]
        assert pulled == [["MOAT-PIN-001"]] * runs, f"{round_}: {pulled}"
    approve = subprocess.run([moat_bin, "pins", "approve", "--config", str(gw.config_path), "--upstream", "demo", "--tool", "add"],
                             capture_output=True, text=True, timeout=60)
    assert approve.returncode == 0, approve.stderr
    gw = gateway(upstreams=[demo(moat_bin, "--rug-pull")], extra=store)
    r = mcp_client(python_mcp1, ["--http", gw.url], [
        {"op": "list_tools"},
        {"op": "wait_notification", "method": "notifications/tools/list_changed", "timeout": 10},
        {"op": "list_tools"},
        {"op": "call_tool", "name": "add", "arguments": {"a": 2, "b": 2}},
    ])["results"]
    assert "add" in {t["name"] for t in ok(r[2])["tools"]}, "the approved definition is served"
    assert "4" in texts(ok(r[3]))


@pytest.mark.parametrize("action", ["block", "redact", "spotlight"])
def test_injected_document_is_handled_as_configured(
    action: str, python_mcp1: str, moat_bin: str, gateway: Callable[..., Any],
    mcp_client: Callable[..., dict[str, Any]],
) -> None:
    # block_at = critical, so that the configured action (not the high-severity block) applies.
    extra = f'[guards.output]\nblock_at = "critical"\ninjection = "{action}"\n'
    gw = gateway(upstreams=[demo(moat_bin)], extra=extra)
    r = mcp_client(python_mcp1, ["--http", gw.url], [
        {"op": "call_tool", "name": "read_document", "arguments": {"name": "Q3 report"}},
    ])["results"]
    if action == "block":
        assert "blocked" in failed(r[0]) and "MOAT-PI-" in failed(r[0])
        return
    text = texts(ok(r[0]))
    if action == "spotlight":
        assert "<<MOAT-UNTRUSTED-" in text and "<</MOAT-UNTRUSTED-" in text
        assert "^" in text, "datamarked"
    else:
        assert "[REDACTED:" in text


def test_default_blocks_the_injected_document(
    python_mcp1: str, moat_bin: str, gateway: Callable[..., Any], mcp_client: Callable[..., dict[str, Any]],
) -> None:
    gw = gateway(upstreams=[demo(moat_bin)])
    r = mcp_client(python_mcp1, ["--http", gw.url], [
        {"op": "call_tool", "name": "read_document", "arguments": {"name": "Q3 report"}},
    ])["results"]
    assert "blocked" in failed(r[0])


def test_pii_and_leaked_key_are_redacted(
    python_mcp2: str, moat_bin: str, gateway: Callable[..., Any], mcp_client: Callable[..., dict[str, Any]],
) -> None:
    gw = gateway(upstreams=[demo(moat_bin)])
    r = mcp_client(python_mcp2, ["--http", gw.url], [
        {"op": "call_tool", "name": "lookup_customer", "arguments": {"customer_id": "1007"}},
    ])["results"]
    text = texts(ok(r[0]))
    for placeholder in ("[REDACTED:aws_access_key]", "[REDACTED:github_token]", "[REDACTED:email]", "[REDACTED:payment_card]", "[REDACTED:us_ssn]"):
        assert placeholder in text, text
    assert "AKIA" not in text and "ghp_" not in text


def test_path_traversal_to_server_filesystem_is_refused(
    python_mcp1: str, node_modules: Path, gateway: Callable[..., Any], mcp_client: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("allowed content")
    server = node_modules / "@modelcontextprotocol" / "server-filesystem" / "dist" / "index.js"
    gw = gateway(upstreams=[{
        "name": "files", "command": ["node", str(server), str(data)],
        "sandbox": {"read": [str(node_modules), str(data)]},
    }])
    r = mcp_client(python_mcp1, ["--http", gw.url], [
        {"op": "call_tool", "name": "read_text_file", "arguments": {"path": str(data / "notes.txt")}},
        {"op": "call_tool", "name": "read_text_file", "arguments": {"path": f"{data}/../../../etc/passwd"}},
        {"op": "call_tool", "name": "read_text_file", "arguments": {"path": "~/.ssh/id_rsa"}},
    ])["results"]
    assert "allowed content" in texts(ok(r[0]))
    assert "`..`" in failed(r[1])
    assert "sensitive" in failed(r[2])


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"internal secret")

    def log_message(self, *args: Any) -> None:
        pass


def test_ssrf_to_a_fetch_tool_is_refused_before_it_reaches_the_target(
    python_mcp1: str, gateway: Callable[..., Any], mcp_client: Callable[..., dict[str, Any]],
) -> None:
    internal = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=internal.serve_forever, daemon=True).start()
    port = internal.server_address[1]
    _Recorder.hits.clear()
    try:
        gw = gateway(upstreams=[{
            "name": "fetch", "command": [python_mcp1, str(SERVERS / "fetch_server.py")],
            "sandbox": {"read": [str(REPO)], "network": True},
        }])
        r = mcp_client(python_mcp1, ["--http", gw.url], [
            {"op": "call_tool", "name": "fetch", "arguments": {"url": f"http://127.0.0.1:{port}/admin"}},
            {"op": "call_tool", "name": "fetch", "arguments": {"url": "http://169.254.169.254/latest/meta-data/"}},
            {"op": "call_tool", "name": "fetch", "arguments": {"url": f"http://localhost:{port}/x"}},
            {"op": "call_tool", "name": "fetch", "arguments": {"url": "file:///etc/passwd"}},
        ])["results"]
        assert "internal address 127.0.0.1" in failed(r[0])
        assert "169.254.169.254" in failed(r[1])
        assert "internal host" in failed(r[2])
        assert "scheme `file`" in failed(r[3])
        assert _Recorder.hits == [], "a refused request must never reach its target"
    finally:
        internal.shutdown()


def test_rate_limit_trips_exactly_at_its_count(
    python_mcp1: str, moat_bin: str, gateway: Callable[..., Any], mcp_client: Callable[..., dict[str, Any]],
) -> None:
    extra = '[[guards.rate_limit]]\nscope = "tool"\nmatch = "echo"\nrequests = 3\nper = "1h"\n'
    gw = gateway(upstreams=[demo(moat_bin)], extra=extra)
    ops = [{"op": "call_tool", "name": "echo", "arguments": {"text": str(i)}} for i in range(5)]
    ops.append({"op": "call_tool", "name": "add", "arguments": {"a": 1, "b": 1}})
    r = mcp_client(python_mcp1, ["--http", gw.url], ops)["results"]
    for i in range(3):
        assert texts(ok(r[i])) == str(i)
    for i in (3, 4):
        assert "rate limit exceeded" in failed(r[i]) and "retry after" in failed(r[i])
    assert "2" in texts(ok(r[5])), "other tools are not limited"


def test_sandbox_memory_limit_stops_a_runaway_upstream_and_the_gateway_restarts_it(
    python_mcp1: str, gateway: Callable[..., Any], mcp_client: Callable[..., dict[str, Any]],
) -> None:
    import time

    script = str(SERVERS / "memory_hog_server.py")
    # Control: with room for its 256 MiB, the same server serves.
    roomy = gateway(upstreams=[{"name": "hog", "command": [python_mcp1, script, "256"],
                                "sandbox": {"read": [str(REPO)], "memory_mb": 2048}}])
    r = mcp_client(python_mcp1, ["--http", roomy.url], [{"op": "call_tool", "name": "size", "arguments": {}}])["results"]
    assert texts(ok(r[0])) == str(256 * 1024 * 1024)
    roomy.child.kill()
    # Under a 128 MiB limit it dies at start; the gateway says why and keeps restarting it.
    tight = gateway(upstreams=[{"name": "hog", "command": [python_mcp1, script, "256"],
                                "sandbox": {"read": [str(REPO)], "memory_mb": 128}}])
    deadline = time.monotonic() + 20
    while tight.child.log().count("upstream stopped; restarting") < 2:
        assert time.monotonic() < deadline, tight.child.log()
        time.sleep(0.2)
    log = tight.child.log()
    assert "MemoryError" in log, "the child's stderr (its MemoryError) is in the gateway's log"
    assert "exited with status 1" in log
    r = mcp_client(python_mcp1, ["--http", tight.url], [{"op": "list_tools"}], timeout=90)["results"]
    assert "error" in r[0] or not ok(r[0])["tools"], "a crash-looping upstream serves nothing"
