"""Drive an MCP server with the official Python SDK, whichever line is installed (1.x or 2.x).

The end-to-end tests run under one interpreter, but Moat must work with both SDK lines, which
cannot share a virtual environment. So each test runs this script with the interpreter of the
SDK line it wants (`MOAT_PYTHON_MCP1` / `MOAT_PYTHON_MCP2`), feeds it a list of operations as
JSON on stdin, and reads one JSON document from stdout.

Usage:
    python mcp_client.py --http URL            < ops.json
    python mcp_client.py --stdio CMD [ARG...]  < ops.json

Operations (a JSON list):
    {"op": "list_tools"} | {"op": "list_resources"} | {"op": "list_prompts"}
    {"op": "call_tool", "name": N, "arguments": {...}}
    {"op": "read_resource", "uri": U}
    {"op": "get_prompt", "name": N, "arguments": {...}}
    {"op": "ping"}
    {"op": "wait_notification", "method": M, "timeout": SECONDS}

Output: {"sdk": "2.3.0", "protocol_version": ..., "server_info": {...}, "handshake":
"initialize" | "discover", "results": [one per op: {"ok": ...} or {"error": ...}],
"notifications": [methods in arrival order]}. Results are the SDK's models dumped in wire
form (camelCase, `None` left out). The 2.x models fill in defaults the server did not send
(`resultType: "complete"`, `ttlMs`, `cacheScope`), so assert on fields a server sets, not on
the absence of those.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from typing import Any

import anyio

SDK_VERSION = version("mcp")
SDK_MAJOR = int(SDK_VERSION.split(".")[0])


def dump(model: Any) -> Any:
    if hasattr(model, "model_dump"):
        return model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return model


def notification_method(message: Any) -> str | None:
    root = getattr(message, "root", message)
    return getattr(root, "method", None)


class Recorder:
    """Collects notifications and lets an operation wait for one."""

    def __init__(self) -> None:
        self.methods: list[str] = []
        self.event = anyio.Event()

    async def __call__(self, message: Any) -> None:
        method = notification_method(message)
        if method is not None:
            self.methods.append(method)
            self.event.set()
            self.event = anyio.Event()

    async def wait_for(self, method: str, timeout: float) -> bool:
        with anyio.move_on_after(timeout):
            while method not in self.methods:
                await self.event.wait()
        return method in self.methods


async def run_ops(client: Any, ops: list[dict[str, Any]], recorder: Recorder) -> list[dict[str, Any]]:
    results = []
    for op in ops:
        kind = op["op"]
        try:
            if kind == "list_tools":
                out = await client.list_tools()
            elif kind == "list_resources":
                out = await client.list_resources()
            elif kind == "list_prompts":
                out = await client.list_prompts()
            elif kind == "call_tool":
                out = await client.call_tool(op["name"], op.get("arguments", {}))
            elif kind == "read_resource":
                out = await client.read_resource(op["uri"])
            elif kind == "get_prompt":
                out = await client.get_prompt(op["name"], op.get("arguments", {}))
            elif kind == "ping":
                out = await client.send_ping()
            elif kind == "wait_notification":
                out = await recorder.wait_for(op["method"], float(op.get("timeout", 5)))
            else:
                raise ValueError(f"unknown operation {kind!r}")
            results.append({"ok": dump(out)})
        except Exception as error:  # noqa: BLE001 - reported to the test, which asserts on it
            results.append({"error": f"{type(error).__name__}: {error}"})
    return results


async def main_v2(target: tuple[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    from mcp import Client, StdioServerParameters

    recorder = Recorder()
    kind, where = target
    server = where if kind == "http" else StdioServerParameters(command=where[0], args=where[1:])
    # The default mode ("auto") probes `server/discover` first and falls back to `initialize`.
    async with Client(server, message_handler=recorder, read_timeout_seconds=30) as client:
        session = client.session
        handshake = "discover" if session.discover_result is not None else "initialize"
        results = await run_ops(client, ops, recorder)
        info = client.server_info
        return {
            "sdk": SDK_VERSION,
            "protocol_version": client.protocol_version,
            "server_info": dump(info) if info is not None else None,
            "handshake": handshake,
            "results": results,
            "notifications": recorder.methods,
        }


async def main_v1(target: tuple[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from mcp.client.streamable_http import streamable_http_client

    recorder = Recorder()
    kind, where = target
    if kind == "http":
        transport = streamable_http_client(where)
    else:
        transport = stdio_client(StdioServerParameters(command=where[0], args=where[1:]))
    async with transport as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write, message_handler=recorder) as session:
            init = await session.initialize()
            results = await run_ops(session, ops, recorder)
            return {
                "sdk": SDK_VERSION,
                "protocol_version": init.protocolVersion,
                "server_info": dump(init.serverInfo),
                "handshake": "initialize",
                "results": results,
                "notifications": recorder.methods,
            }


def parse_target(argv: list[str]) -> tuple[str, Any]:
    if len(argv) >= 2 and argv[0] == "--http":
        return ("http", argv[1])
    if len(argv) >= 2 and argv[0] == "--stdio":
        return ("stdio", argv[1:])
    raise SystemExit("usage: mcp_client.py --http URL | --stdio CMD [ARG...]  < ops.json")


def main() -> None:
    target = parse_target(sys.argv[1:])
    ops = json.load(sys.stdin)
    runner = main_v2 if SDK_MAJOR >= 2 else main_v1
    out = anyio.run(runner, target, ops)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
