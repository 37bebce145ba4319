"""A Streamable HTTP MCP server (official Python SDK 1.x FastMCP) that is an OAuth resource
server: every request needs a bearer JWT from the test's oidc-provider, verified against the
provider's JWKS (PyJWT, which the SDK itself depends on) with this server's URL as audience.

Tools:
    whoami          the claims of the token that carried the call (`sub`, `client_id`, `jti`, `act`) and
                    whether its `aud` is this server's URL
    revoke_my_token refuse the token that carried this call from now on (its `jti`), so the next
                    request with it gets 401 — as an upstream that revoked a token early would

Usage: python oauth_protected_server.py PORT ISSUER [--stateless]

With `--stateless` the server keeps no MCP session (`stateless_http`), so a request may carry a
token for another subject than the one that initialized: what calls made with tokens exchanged
per caller need. Without it, the SDK binds each session to the (client, issuer, subject) that
created it and answers 404 to any other.
"""

from __future__ import annotations

import json
import sys

import jwt
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.fastmcp import Context, FastMCP

PORT = int(sys.argv[1])
ISSUER = sys.argv[2]
STATELESS = "--stateless" in sys.argv[3:]
RESOURCE = f"http://127.0.0.1:{PORT}/mcp"
REVOKED: set[str] = set()


class JwksVerifier:
    """Checks signature (RS256, the issuer's JWKS), issuer, expiry and audience."""

    def __init__(self) -> None:
        self.jwks = jwt.PyJWKClient(f"{ISSUER}/jwks")

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            key = self.jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=RESOURCE, issuer=ISSUER)
        except jwt.PyJWTError as error:
            print(f"token refused: {error}", file=sys.stderr, flush=True)
            return None
        if claims.get("jti") in REVOKED:
            print("token refused: revoked", file=sys.stderr, flush=True)
            return None
        return AccessToken(
            token=token,
            client_id=claims.get("client_id", ""),
            scopes=claims.get("scope", "").split(),
            expires_at=claims.get("exp"),
            resource=RESOURCE,
            subject=claims.get("sub"),
            claims=claims,
        )


mcp = FastMCP(
    "oauth-protected",
    host="127.0.0.1",
    port=PORT,
    stateless_http=STATELESS,
    token_verifier=JwksVerifier(),
    auth=AuthSettings(
        issuer_url=ISSUER,
        resource_server_url=RESOURCE,
        required_scopes=["mcp:read"],
        validate_token_resource=True,
    ),
)


def current_claims(ctx: Context) -> dict:
    """Claims of the bearer token on the HTTP request that carried this call (verified by the
    SDK's auth middleware before the call got here). Read from the request itself: the SDK's
    auth context variable belongs to the request that started the session's task."""
    request = ctx.request_context.request
    header = request.headers.get("authorization", "") if request is not None else ""
    token = header.removeprefix("Bearer ")
    return jwt.decode(token, options={"verify_signature": False}) if token else {}


@mcp.tool()
def whoami(ctx: Context) -> str:
    """Report who the token that carried this call names."""
    c = current_claims(ctx)
    seen = {k: c.get(k) for k in ("sub", "client_id", "jti", "act")}
    # The audience as a verdict: the gateway's output guard redacts IP addresses in results.
    seen["aud_is_this_server"] = c.get("aud") == RESOURCE
    return json.dumps(seen)


@mcp.tool()
def revoke_my_token(ctx: Context) -> str:
    """Refuse the token that carried this call from now on."""
    jti = current_claims(ctx).get("jti")
    REVOKED.add(jti)
    return json.dumps({"revoked": jti})


if __name__ == "__main__":
    mcp.run(transport="streamable-http")
