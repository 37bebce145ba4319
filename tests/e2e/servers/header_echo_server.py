"""A Streamable HTTP MCP server (official Python SDK 1.x FastMCP) whose `whoami` tool returns the
`Authorization` and `X-Tenant` headers of the request that carried the call, so a test can see
exactly which credential the gateway presented upstream.

Usage: python header_echo_server.py PORT
"""

from __future__ import annotations

import json
import sys

from mcp.server.fastmcp import Context, FastMCP

mcp = FastMCP("header-echo", host="127.0.0.1", port=int(sys.argv[1]))


@mcp.tool()
def whoami(ctx: Context) -> str:
    """Report the credential headers this server received."""
    request = ctx.request_context.request
    headers = request.headers if request is not None else {}
    return json.dumps({"authorization": headers.get("authorization"), "x-tenant": headers.get("x-tenant")})


if __name__ == "__main__":
    mcp.run(transport="streamable-http")
