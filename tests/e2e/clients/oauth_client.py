"""Drive the gateway as an OAuth client with the official Python SDK 1.x and nothing else.

The SDK's own `ClientCredentialsOAuthProvider` does the whole flow: the gateway's 401 names its
protected-resource metadata (RFC 9728), the SDK reads it, discovers the authorization server
(RFC 8414 / OpenID Connect), asks for a token for the gateway's URL (RFC 8707 `resource`), and
retries; a 403 `insufficient_scope` makes it ask again for the scopes the gateway named (step-up).

Usage: python oauth_client.py URL ISSUER CLIENT_ID CLIENT_SECRET SCOPES < ops.json
ops: [{"op": "list_tools"} | {"op": "call_tool", "name": N, "arguments": {...}}]
Output: {"results": [{"ok": ...} | {"error": ...}], "token_scopes": [scope of each token the SDK
stored, in order]} — the tokens themselves are never printed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
from mcp import ClientSession
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None
        self.scopes: list[str | None] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.scopes.append(tokens.scope)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


async def main() -> None:
    url, issuer, client_id, client_secret, scopes = sys.argv[1:6]
    ops: list[dict[str, Any]] = json.load(sys.stdin)
    storage = MemoryStorage()
    auth = ClientCredentialsOAuthProvider(server_url=url, storage=storage, client_id=client_id,
                                          client_secret=client_secret, scopes=scopes, issuer=issuer)
    results: list[dict[str, Any]] = []
    async with streamablehttp_client(url, auth=auth) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            for op in ops:
                try:
                    if op["op"] == "list_tools":
                        r = await session.list_tools()
                    elif op["op"] == "call_tool":
                        r = await session.call_tool(op["name"], op.get("arguments", {}))
                    else:
                        raise ValueError(f"unknown op {op['op']}")
                    results.append({"ok": r.model_dump(mode="json", by_alias=True, exclude_none=True)})
                except Exception as e:  # noqa: BLE001 - reported to the test
                    results.append({"error": f"{type(e).__name__}: {e}"})
    print(json.dumps({"results": results, "token_scopes": storage.scopes}))


anyio.run(main)
