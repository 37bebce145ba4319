"""Drive the gateway as an OAuth client with the official Python SDK 1.x and nothing else.

The SDK's own providers do the whole flow: the gateway's 401 names its protected-resource
metadata (RFC 9728), the SDK reads it, discovers the authorization server (RFC 8414 / OpenID
Connect), obtains a token for the gateway's URL (RFC 8707 `resource`) and retries; a 403
`insufficient_scope` makes it ask again for the scopes the gateway named (step-up).

Flows:
- `client_credentials`: `ClientCredentialsOAuthProvider`, a confidential client.
- `authorization_code`: `OAuthClientProvider`, a public client with PKCE (S256), pre-registered
  as CLIENT_ID (CLIENT_SECRET is `-`). The user's browser is played by `Browser` below: it follows
  the authorization URL the SDK hands over, signs in and consents on oidc-provider's own
  development pages, and gives the SDK the code from the redirect, as a real browser and a
  loopback callback would.

Usage: python oauth_client.py URL ISSUER CLIENT_ID CLIENT_SECRET SCOPES [FLOW] < ops.json
ops: [{"op": "list_tools"} | {"op": "call_tool", "name": N, "arguments": {...}}]
Output: {"results": [{"ok": ...} | {"error": ...}], "token_scopes": [scope of each token the SDK
stored, in order]} — the tokens themselves are never printed.
"""

from __future__ import annotations

import html
import http.cookiejar
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import anyio
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

REDIRECT_URI = "http://127.0.0.1/callback"


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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Browser:
    """The user agent of the authorization-code flow, against oidc-provider's dev interactions."""

    def __init__(self) -> None:
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _NoRedirect)
        self.result: tuple[str, str | None] | None = None
        self.pages = 0

    def authorize(self, url: str) -> None:
        data: bytes | None = None
        for _ in range(20):
            try:
                resp = self.opener.open(urllib.request.Request(url, data=data), timeout=30)
                status, headers, body = resp.status, resp.headers, resp.read().decode()
            except urllib.error.HTTPError as e:
                status, headers, body = e.code, e.headers, e.read().decode()
            if status in (301, 302, 303, 307, 308):
                location = urllib.parse.urljoin(url, headers["Location"])
                if location.startswith(REDIRECT_URI):
                    query = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)
                    if "error" in query:
                        raise RuntimeError(f"authorization failed: {query}")
                    self.result = (query["code"][0], query.get("state", [None])[0])
                    return
                url, data = location, None
                continue
            form = re.search(r'<form[^>]*action="([^"]+)"', body)
            if status != 200 or not form:
                text = re.sub(r"<style.*?</style>", "", body, flags=re.S)
                raise RuntimeError(f"unexpected page {status} at {url}: {text[:1500]}")
            # A sign-in page (any login and password), then a consent page.
            self.pages += 1
            fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', body))
            if 'name="login"' in body:
                fields.update(login="alice", password="any")
            url, data = urllib.parse.urljoin(url, html.unescape(form.group(1))), urllib.parse.urlencode(fields).encode()
        raise RuntimeError("the authorization server never redirected back")


async def main() -> None:
    url, issuer, client_id, client_secret, scopes = sys.argv[1:6]
    flow = sys.argv[6] if len(sys.argv) > 6 else "client_credentials"
    ops: list[dict[str, Any]] = json.load(sys.stdin)
    storage = MemoryStorage()
    browser = Browser()
    if flow == "client_credentials":
        auth: Any = ClientCredentialsOAuthProvider(server_url=url, storage=storage, client_id=client_id,
                                                   client_secret=client_secret, scopes=scopes, issuer=issuer)
    else:
        storage.client_info = OAuthClientInformationFull(
            client_id=client_id, redirect_uris=[REDIRECT_URI], grant_types=["authorization_code", "refresh_token"],
            response_types=["code"], token_endpoint_auth_method="none", scope=scopes)

        async def redirect(authorization_url: str) -> None:
            await anyio.to_thread.run_sync(browser.authorize, authorization_url)

        async def callback() -> tuple[str, str | None]:
            assert browser.result is not None, "the browser brought back no code"
            return browser.result

        auth = OAuthClientProvider(
            server_url=url, storage=storage, redirect_handler=redirect, callback_handler=callback,
            client_metadata=OAuthClientMetadata(
                redirect_uris=[REDIRECT_URI], grant_types=["authorization_code", "refresh_token"],
                response_types=["code"], token_endpoint_auth_method="none", scope=scopes))
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
    print(json.dumps({"results": results, "token_scopes": storage.scopes, "browser_pages": browser.pages}))


anyio.run(main)
