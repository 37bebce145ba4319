"""Server-to-client round trips through Moat with the official Python SDK 1.x client.

Connects over Streamable HTTP with a sampling callback and an elicitation callback, calls the
tools named on the command line, and prints JSON: what each callback received and each tool's
result, so the test can assert that the request reached this client and the answer reached
the server.

Usage: python roundtrip_client.py URL SAMPLING_TOOL ELICITATION_TOOL
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client

SAMPLED_TEXT = "a reply from the test's sampling callback"


def dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def main(url: str, sampling_tool: str, elicitation_tool: str) -> dict[str, Any]:
    seen: dict[str, Any] = {"sampling": [], "elicitation": []}

    async def on_sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        seen["sampling"].append(dump(params))
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=SAMPLED_TEXT),
            model="test-model",
            stopReason="endTurn",
        )

    async def on_elicitation(context: Any, params: Any) -> types.ElicitResult:
        seen["elicitation"].append(dump(params))
        schema = getattr(params, "requestedSchema", None) or {}
        content: dict[str, Any] = {}
        for key, prop in (schema.get("properties") or {}).items():
            kind = prop.get("type")
            if "enum" in prop:
                content[key] = prop["enum"][0]
            elif kind == "boolean":
                content[key] = True
            elif kind in ("number", "integer"):
                content[key] = prop.get("minimum", 1)
            else:
                content[key] = "Ada"
        return types.ElicitResult(action="accept", content=content)

    results: dict[str, Any] = {}
    async with streamable_http_client(url) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write, sampling_callback=on_sampling, elicitation_callback=on_elicitation) as s:
            await s.initialize()
            tools = {t.name for t in (await s.list_tools()).tools}
            results["tools"] = sorted(tools)
            r = await s.call_tool(sampling_tool, {"prompt": "Say hello", "maxTokens": 20})
            results["sampling_result"] = dump(r)
            r = await s.call_tool(elicitation_tool, {})
            results["elicitation_result"] = dump(r)
    return {"seen": seen, "results": results}


if __name__ == "__main__":
    out = anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3])
    json.dump(out, sys.stdout)
