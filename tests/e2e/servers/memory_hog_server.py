"""A stdio MCP server (official Python SDK 1.x FastMCP) that first allocates MEGABYTES of memory
(argv[1]) and only then serves. Under a sandbox memory limit below that, it dies at start with
MemoryError, so the gateway must report the exit and restart it with backoff."""

from __future__ import annotations

import sys

hog = bytearray(int(sys.argv[1]) * 1024 * 1024)
hog[-1] = 1

from mcp.server.fastmcp import FastMCP  # noqa: E402 - only after the allocation

mcp = FastMCP("memory-hog")


@mcp.tool()
def size() -> str:
    """How many bytes this server holds."""
    return str(len(hog))


if __name__ == "__main__":
    mcp.run()
