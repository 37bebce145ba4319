"""OpenTelemetry traces over OTLP/HTTP (issue 7, docs/telemetry.md).

Each test runs its own OTLP/HTTP receiver (a `http.server` on 127.0.0.1:0 that accepts
`POST /v1/traces` and decodes the protobuf body with the official `opentelemetry-proto`
package), points `[telemetry] otlp_endpoint` at it, drives calls through the real gateway to an
HTTP upstream that echoes the `traceparent` it received, and checks the exported spans: names,
kinds, attributes, parent/child links, the trace id the upstream saw and the one in the audit
record, and that no token or secret is in any exported value.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from conftest import post
from test_auth import INIT, create_key

SERVERS = Path(__file__).resolve().parent / "servers"
UPSTREAM_TOKEN = "upstream-secret-7f3a9c"
COLLECTOR_KEY = "collector-key-51d2e8"
SPAN_WAIT = 15.0


def otlp_proto() -> Any:
    """The `opentelemetry-proto` messages, or a skip (a failure under MOAT_REQUIRE_PEERS=1)."""
    try:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    except ImportError:
        reason = "opentelemetry-proto not installed (tests/peers/python-mcp2/requirements.txt; run scripts/test peers)"
        if os.environ.get("MOAT_REQUIRE_PEERS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return trace_service_pb2


@dataclass
class Span:
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    status_code: str
    resource: dict[str, Any]


def any_value(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, which) if which else None


@dataclass
class OtlpReceiver:
    """An OTLP/HTTP trace receiver: what arrived, and the headers each export carried."""

    url: str
    server: ThreadingHTTPServer
    spans: list[Span] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, predicate: Callable[[list[Span]], bool], timeout: float = SPAN_WAIT) -> list[Span]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                spans = list(self.spans)
            if predicate(spans):
                return spans
            time.sleep(0.05)
        with self.lock:
            names = [(s.name, s.kind) for s in self.spans]
        raise AssertionError(f"the expected spans did not arrive in {timeout}s; received: {names}")


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    pb = otlp_proto()
    from opentelemetry.proto.trace.v1 import trace_pb2

    holder: dict[str, OtlpReceiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
                self.send_response(404)
                self.end_headers()
                return
            request = pb.ExportTraceServiceRequest.FromString(body)
            spans = []
            for rs in request.resource_spans:
                resource = {kv.key: any_value(kv.value) for kv in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        spans.append(Span(
                            name=s.name,
                            kind=trace_pb2.Span.SpanKind.Name(s.kind),
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_span_id=s.parent_span_id.hex(),
                            attributes={kv.key: any_value(kv.value) for kv in s.attributes},
                            status_code=trace_pb2.Status.StatusCode.Name(s.status.code),
                            resource=resource,
                        ))
            receiver = holder["r"]
            with receiver.lock:
                receiver.spans.extend(spans)
                receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                receiver.raw.append(body)
            reply = pb.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = OtlpReceiver(url=f"http://127.0.0.1:{server.server_address[1]}", server=server)
    holder["r"] = receiver
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


def trace_echo(spawn: Callable[..., Any], python_mcp1: str) -> str:
    """Starts the HTTP upstream that echoes the trace headers it receives; returns its URL."""
    from conftest import pick_free_port

    port = pick_free_port()
    child = spawn([python_mcp1, str(SERVERS / "trace_echo_server.py"), str(port)], name="trace-echo")
    child.wait_for_port(port)
    return f"http://127.0.0.1:{port}/mcp"


def telemetry_toml(receiver: OtlpReceiver, tmp_path: Path, extra: str = "") -> str:
    return (
        f'[telemetry]\notlp_endpoint = "{receiver.url}"\nservice_name = "moat-e2e"\n'
        'headers = { x-collector-key = "env:MOAT_TEST_COLLECTOR_KEY" }\n'
        # `required`: each record is written before its answer leaves, so the test can read it.
        f'\n[audit]\njsonl = "{tmp_path / "audit.jsonl"}"\nrequired = true\n{extra}'
    )


def audit_trace_ids(path: Path, method: str) -> list[str]:
    """The `trace_id` of every audit record of `method` in a JSON-lines audit file."""
    ids = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        record = entry.get("record", entry)
        if record.get("method") == method:
            ids.append(record.get("trace_id"))
    return ids


def everything_exported(receiver: OtlpReceiver) -> str:
    """Every exported name, attribute and resource value, and the raw request bodies, as text."""
    with receiver.lock:
        spans = list(receiver.spans)
        raw = b"".join(receiver.raw)
    text = json.dumps([[s.name, s.attributes, s.resource] for s in spans])
    return text + raw.decode("latin-1")


def test_sdk_tool_call_exports_request_and_upstream_spans(
    moat_bin: str, python_mcp1: str, python_mcp2: str, gateway: Callable[..., Any], spawn: Callable[..., Any],
    mcp_client: Callable[..., dict[str, Any]], otlp_receiver: OtlpReceiver, tmp_path: Path,
) -> None:
    upstream_url = trace_echo(spawn, python_mcp1)
    (tmp_path / "upstream-token").write_text(UPSTREAM_TOKEN + "\n")
    gw = gateway(
        upstreams=[{"name": "echo", "url": upstream_url, "credential": f"file:{tmp_path / 'upstream-token'}"}],
        extra=telemetry_toml(otlp_receiver, tmp_path),
        env={"MOAT_TEST_COLLECTOR_KEY": COLLECTOR_KEY, "OTEL_BSP_SCHEDULE_DELAY": "100"},
    )
    out = mcp_client(python_mcp2, ["--http", gw.url], [
        {"op": "list_tools"},
        {"op": "call_tool", "name": "trace_headers", "arguments": {"note": "hello"}},
    ])
    result = out["results"][1]
    assert "ok" in result, result
    seen = json.loads(result["ok"]["content"][0]["text"])
    assert seen["authorized"], "the upstream gets Moat's own credential"

    def call_spans(spans: list[Span]) -> bool:
        return any(s.kind == "SPAN_KIND_SERVER" and s.name == "tools/call trace_headers" for s in spans) and any(
            s.kind == "SPAN_KIND_CLIENT" and s.name == "tools/call trace_headers" for s in spans)

    spans = otlp_receiver.wait_for(call_spans)
    server = next(s for s in spans if s.kind == "SPAN_KIND_SERVER" and s.name == "tools/call trace_headers")
    client = next(s for s in spans if s.kind == "SPAN_KIND_CLIENT" and s.name == "tools/call trace_headers")

    # The request span: MCP semantic conventions plus Moat's decision.
    a = server.attributes
    assert a["mcp.method.name"] == "tools/call"
    assert a["gen_ai.tool.name"] == "trace_headers"
    assert a["gen_ai.operation.name"] == "execute_tool"
    assert a["moat.decision"] == "allow"
    assert a["moat.upstream"] == "echo"
    assert isinstance(a["jsonrpc.request.id"], str) and a["jsonrpc.request.id"]
    assert len(a["moat.session"]) == 8, "only the session id's prefix, as in the audit log"
    assert a["mcp.protocol.version"] == out["protocol_version"]
    assert "rpc.jsonrpc.error_code" not in a and server.status_code != "STATUS_CODE_ERROR"
    assert server.parent_span_id == "", "no client context was sent: the request span is a root"
    assert server.resource["service.name"] == "moat-e2e"

    # The upstream call: a CLIENT child of the request span, in the same trace.
    assert client.trace_id == server.trace_id
    assert client.parent_span_id == server.span_id
    assert client.attributes["moat.upstream"] == "echo"
    assert client.attributes["mcp.method.name"] == "tools/call"
    assert client.attributes["gen_ai.tool.name"] == "trace_headers"

    # The upstream received the upstream call's context in `traceparent`.
    version, trace_id, parent_id, flags = seen["traceparent"].split("-")
    assert (version, trace_id, parent_id, flags) == ("00", server.trace_id, client.span_id, "01")

    # Other requests have spans of their own (lists are answered by Moat, upstream lists by it too).
    assert any(s.kind == "SPAN_KIND_SERVER" and s.name == "initialize" for s in spans)

    # The audit record of the call names the same trace.
    assert audit_trace_ids(tmp_path / "audit.jsonl", "tools/call") == [server.trace_id]

    # The collector's key, a header by reference, went with every export and nowhere else.
    assert otlp_receiver.headers and all(h.get("x-collector-key") == COLLECTOR_KEY for h in otlp_receiver.headers)
    exported = everything_exported(otlp_receiver)
    for secret in (UPSTREAM_TOKEN, COLLECTOR_KEY):
        assert secret not in exported
    assert COLLECTOR_KEY not in gw.child.log()


def test_client_traceparent_is_the_parent_and_spans_are_flushed_at_exit(
    moat_bin: str, python_mcp1: str, gateway: Callable[..., Any], spawn: Callable[..., Any],
    otlp_receiver: OtlpReceiver, tmp_path: Path,
) -> None:
    upstream_url = trace_echo(spawn, python_mcp1)
    keys = tmp_path / "keys.json"
    alice = create_key(moat_bin, keys, "alice")
    # A batch delay longer than the test: only the flush at exit can deliver the spans.
    gw = gateway(
        upstreams=[{"name": "echo", "url": upstream_url}],
        extra=telemetry_toml(otlp_receiver, tmp_path, f'\n[auth]\nmode = "api_key"\napi_keys_file = "{keys}"\n'),
        env={"MOAT_TEST_COLLECTOR_KEY": COLLECTOR_KEY, "OTEL_BSP_SCHEDULE_DELAY": "600000"},
    )
    auth = {"Authorization": f"Bearer {alice}"}
    status, headers, _ = post(gw.url, INIT, auth)
    assert status == 200
    sid = headers["mcp-session-id"]
    h = {**auth, "Mcp-Session-Id": sid}
    post(gw.url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, h)

    client_trace, client_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    traced = {**h, "traceparent": f"00-{client_trace}-{client_span}-01", "tracestate": "vendor=abc"}
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "trace_headers", "arguments": {}}}
    status, _, payload = post(gw.url, call, traced)
    assert status == 200, payload
    seen = json.loads(json.loads(payload)["result"]["content"][0]["text"])
    assert seen["traceparent"].split("-")[1] == client_trace, "the upstream continues the client's trace"
    assert seen["tracestate"] == "vendor=abc"

    # The same in `params._meta` (the MCP semantic conventions' carrier) wins over the header.
    meta_trace, meta_span = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    call3 = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "trace_headers", "arguments": {}, "_meta": {"traceparent": f"00-{meta_trace}-{meta_span}-01"}}}
    status, _, payload = post(gw.url, call3, traced)
    assert status == 200, payload
    assert json.loads(json.loads(payload)["result"]["content"][0]["text"])["traceparent"].split("-")[1] == meta_trace

    # An unknown tool: the JSON-RPC error code is on the request span.
    unknown = {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "nope", "arguments": {}}}
    status, _, payload = post(gw.url, unknown, h)
    assert json.loads(payload)["error"]["code"] == -32602

    assert not otlp_receiver.spans, "nothing is exported before the batch delay"
    # A tool that fails: a result with `isError`, the conventions' `tool_error`.
    failing = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "fail", "arguments": {}}}
    status, _, payload = post(gw.url, failing, h)
    assert json.loads(payload)["result"]["isError"] is True, payload

    gw.child.kill()  # SIGTERM: the gateway flushes its spans before it exits
    assert gw.child.process.returncode == 0, gw.child.log()
    spans = otlp_receiver.wait_for(lambda s: len(s) > 0, timeout=1.0)

    by_trace = {s.trace_id: s for s in spans if s.kind == "SPAN_KIND_SERVER" and s.name == "tools/call trace_headers"}
    server = by_trace[client_trace]
    assert server.parent_span_id == client_span, "the client's span is the parent of the request span"
    upstream_call = next(s for s in spans if s.kind == "SPAN_KIND_CLIENT" and s.trace_id == client_trace)
    assert upstream_call.parent_span_id == server.span_id
    assert seen["traceparent"].split("-")[2] == upstream_call.span_id
    assert by_trace[meta_trace].parent_span_id == meta_span

    failed = next(s for s in spans if s.kind == "SPAN_KIND_SERVER" and s.name == "tools/call nope")
    assert failed.attributes["rpc.jsonrpc.error_code"] == -32602
    assert failed.status_code == "STATUS_CODE_ERROR"
    for kind in ("SPAN_KIND_SERVER", "SPAN_KIND_CLIENT"):
        tool_error = next(s for s in spans if s.kind == kind and s.name == "tools/call fail")
        assert tool_error.attributes["error.type"] == "tool_error", tool_error
        assert tool_error.status_code == "STATUS_CODE_ERROR"
        assert "rpc.jsonrpc.error_code" not in tool_error.attributes

    # Each forwarded call's audit record names its trace (the unknown tool was never forwarded).
    expected = sorted([client_trace, meta_trace, tool_error.trace_id])
    assert sorted(audit_trace_ids(tmp_path / "audit.jsonl", "tools/call")) == expected
    exported = everything_exported(otlp_receiver)
    assert alice not in exported and sid not in exported, "neither the API key nor the session id is exported"


def test_bad_telemetry_config_is_refused_at_its_line(moat_bin: str, tmp_path: Path) -> None:
    config = tmp_path / "moat.toml"
    config.write_text('[telemetry]\notlp_endpoint = "localhost:4318"\n')
    out = subprocess.run([moat_bin, "config", "check", str(config)], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode != 0
    assert ":2:" in out.stderr and "telemetry.otlp_endpoint" in out.stderr and "http://host:port" in out.stderr, out.stderr


def test_wrap_exports_spans_and_flushes_when_the_client_leaves(
    moat_bin: str, python_mcp2: str, mcp_client: Callable[..., dict[str, Any]], otlp_receiver: OtlpReceiver,
    tmp_path: Path,
) -> None:
    config = tmp_path / "wrap.toml"
    config.write_text(f'[telemetry]\notlp_endpoint = "{otlp_receiver.url}"\n\n[store]\nurl = "memory"\n')
    # The client starts `moat wrap`, calls, closes its stdin and waits for it to exit; spans still
    # queued (the default batch delay is 5 s) leave in the flush at exit.
    out = mcp_client(python_mcp2, ["--stdio", moat_bin, "wrap", "--config", str(config), "--", moat_bin,
                                   "demo-server"], [{"op": "call_tool", "name": "echo", "arguments": {"text": "hi"}}])
    assert "ok" in out["results"][0], out
    spans = otlp_receiver.wait_for(lambda s: any(x.kind == "SPAN_KIND_CLIENT" for x in s), timeout=10.0)
    server = next(s for s in spans if s.kind == "SPAN_KIND_SERVER" and s.name == "tools/call echo")
    client = next(s for s in spans if s.kind == "SPAN_KIND_CLIENT" and s.name == "tools/call echo")
    assert client.parent_span_id == server.span_id and client.trace_id == server.trace_id
    assert server.attributes["moat.decision"] == "allow"
    assert server.resource["service.name"] == "moat"
