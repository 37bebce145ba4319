"""A fetch-style MCP server built with the official Python SDK (1.x FastMCP), for the SSRF
tests: its `fetch` tool really fetches the URL it is given, so a request Moat lets through
reaches its target, and one Moat refuses never does."""

from __future__ import annotations

import urllib.request

from mcp.server.fastmcp import FastMCP

mcp = FastMCP("fetch-test")


@mcp.tool()
def fetch(url: str) -> str:
    """Fetch a URL and return the first 2,000 characters of its body."""
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read(2000).decode("utf-8", "replace")


if __name__ == "__main__":
    mcp.run()
