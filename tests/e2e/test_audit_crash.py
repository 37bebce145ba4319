"""Losing nothing (issue 7): with `[audit] required = true` a record is durable before its response
leaves. The gateway is killed with SIGKILL while clients call it concurrently; every call that was
acknowledged must have its record, in the store and in the JSON-lines file, and both chains must
verify, before and after a restart that appends to them."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

from conftest import post
from test_auth import INIT

CLIENTS = 6
MIN_ACKS_BEFORE_KILL = 150


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def texts_in_records(moat_bin: str, where: list[str]) -> list[str]:
    out = run([moat_bin, "audit", "export", *where])
    assert out.returncode == 0, out.stderr
    texts = []
    for line in out.stdout.splitlines():
        entry = json.loads(line)
        record = entry.get("record", entry)
        args = record.get("arguments") or {}
        if isinstance(args, dict) and isinstance(args.get("text"), str):
            texts.append(args["text"])
    return texts


class Caller(threading.Thread):
    """One client: its own session, then `echo` calls with unique texts until the gateway dies."""

    def __init__(self, url: str, n: int) -> None:
        super().__init__(daemon=True)
        self.url, self.n = url, n
        self.acked: list[str] = []

    def run(self) -> None:
        try:
            status, headers, _ = post(self.url, INIT, {})
            assert status == 200
            h = {"Mcp-Session-Id": headers["mcp-session-id"]}
            post(self.url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, h)
            post(self.url, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, h)
            for i in range(100_000):
                text = f"crash-{self.n}-{i}"
                body = {"jsonrpc": "2.0", "id": i + 2, "method": "tools/call",
                        "params": {"name": "echo", "arguments": {"text": text}}}
                status, _, payload = post(self.url, body, h)
                if status != 200:
                    return
                result = json.loads(payload)
                if result.get("result", {}).get("content", [{}])[0].get("text") == text:
                    self.acked.append(text)
        except (OSError, http.client.HTTPException, json.JSONDecodeError, AssertionError, KeyError):
            return  # the gateway died under us: what was acknowledged before counts


def test_sigkill_under_load_loses_no_acknowledged_call(
    moat_bin: str, gateway: Callable[..., Any], tmp_path: Path,
) -> None:
    key = tmp_path / "audit.key"
    out = run([moat_bin, "audit", "keygen", "--out", str(key), "--public-out", str(tmp_path / "audit.pub.pem")])
    assert out.returncode == 0, out.stderr
    jsonl = tmp_path / "audit.jsonl"
    gw = gateway(
        upstreams=[{"name": "demo", "command": [moat_bin, "demo-server"]}],
        extra=f'[audit]\nrequired = true\ninclude_arguments = true\njsonl = "{jsonl}"\n'
              f'signing_key = "file:{key}"\nseal_every = 50\n',
    )
    store_url = gw.store_url
    callers = [Caller(gw.url, n) for n in range(CLIENTS)]
    for c in callers:
        c.start()
    deadline = time.monotonic() + 60
    while sum(len(c.acked) for c in callers) < MIN_ACKS_BEFORE_KILL and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(gw.child.process.pid, signal.SIGKILL)
    gw.child.process.wait(timeout=10)
    for c in callers:
        c.join(timeout=30)
    acked = [t for c in callers for t in c.acked]
    assert len(acked) >= MIN_ACKS_BEFORE_KILL, f"only {len(acked)} calls answered before the kill"

    public = ["--public-key", f"file:{tmp_path / 'audit.pub.pem'}"]
    for where in (["--store", store_url], ["--file", str(jsonl)]):
        verified = run([moat_bin, "audit", "verify", *where, *public])
        assert verified.returncode == 0, f"{where}: {verified.stdout}{verified.stderr}"
        recorded = set(texts_in_records(moat_bin, where))
        missing = [t for t in acked if t not in recorded]
        assert not missing, f"{len(missing)} acknowledged calls have no record in {where[0]}: {missing[:5]}"

    # A restart continues both chains; they still verify, with the new records in them.
    text = gw.config_path.read_text().replace(f"127.0.0.1:{gw.port}", "127.0.0.1:{port}")
    again = gateway(text)
    status, headers, _ = post(again.url, INIT, {})
    h = {"Mcp-Session-Id": headers["mcp-session-id"]}
    post(again.url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, h)
    post(again.url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, h)
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "after-restart"}}}
    status, _, _ = post(again.url, body, h)
    assert status == 200
    for where in (["--store", store_url], ["--file", str(jsonl)]):
        verified = run([moat_bin, "audit", "verify", *where, *public])
        assert verified.returncode == 0, f"{where} after restart: {verified.stdout}{verified.stderr}"
        assert "after-restart" in texts_in_records(moat_bin, where)
