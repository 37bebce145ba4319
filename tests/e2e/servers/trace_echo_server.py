"""A Streamable HTTP MCP server (official Python SDK 1.x FastMCP) whose `trace_headers` tool
returns the W3C trace-context headers of the HTTP request that carried the call (and whether it
had an `Authorization` header: the value itself would be redacted by the output guard), so a test can see which `traceparent` the gateway sent upstream (tests/e2e/test_telemetry.py).

Usage: python trace_echo_server.py PORT
"""

from __future__ import annotations

import json
import sys

from mcp.server.fastmcp import Context, FastMCP

mcp = FastMCP("trace-echo", host="127.0.0.1", port=int(sys.argv[1]))


@mcp.tool()
def trace_headers(ctx: Context, note: str = "") -> str:
    """Report the trace-context headers this server received with the call."""
    request = ctx.request_context.request
    headers = request.headers if request is not None else {}
    return json.dumps({
        "traceparent": headers.get("traceparent"),
        "tracestate": headers.get("tracestate"),
        "authorized": headers.get("authorization") is not None,
        "note": note,
    })


@mcp.tool()
def fail() -> str:
    """Always fails: the SDK answers with a tool result whose `isError` is true."""
    raise ValueError("this tool always fails")


if __name__ == "__main__":
    mcp.run(transport="streamable-http")
