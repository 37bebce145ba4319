// A real OAuth 2.1 / OpenID Connect authorization server (oidc-provider) for moat-auth's
// integration tests. Test-only: it listens on loopback and exposes its private keys.
//
// Usage: node provider.mjs [PORT]        (or MOAT_OIDC_PORT; 0 = pick a free port)
// On start it prints one line to stdout: `{"issuer":"http://127.0.0.1:PORT"}`.
//
// Resource servers (RFC 8707 resource indicators):
//   MOAT_OIDC_AUDIENCE (default http://127.0.0.1:1/mcp)  -> JWT access tokens (RS256)
//   https://other.example/mcp                            -> JWT access tokens for another audience
//   https://upstream.test/mcp                            -> JWT access tokens for an upstream MCP server
//   https://upstream.test/short-ttl                      -> the same, living 2 s (cache expiry tests)
//   http://127.0.0.1:PORT/...                            -> JWT access tokens for a loopback upstream
// Clients:
//   moat-cc / moat-cc-secret    client_credentials (client_secret_basic), JWT access tokens
//   moat-opaque / moat-opaque-secret  client_credentials, opaque access tokens (for RFC 7662)
//   moat-rs / moat-rs-secret    the resource server itself (introspection)
//   moat-pkce                   authorization_code + PKCE S256, public client,
//                               redirect http://127.0.0.1/callback
//   moat-upstream / moat-upstream-secret  Moat as a client of upstream MCP servers:
//                               client_credentials and RFC 8693 token exchange
// Token exchange (RFC 8693, grant_type urn:ietf:params:oauth:grant-type:token-exchange):
//   subject_token must be a JWT access token this provider issued for MOAT_OIDC_AUDIENCE or a
//   loopback resource (a gateway under test) (subject_token_type ...:access_token); the answer is a JWT access token for `resource`
//   (or `audience`) whose `sub` is the subject token's `sub` and whose `act.sub` is the
//   exchanging client (RFC 8693 §4.1).
// Test hooks (never in a real deployment):
//   GET  /__test/keys    -> {"keys":[{"kid","private_pem","public_pem"}]}, newest first
//   POST /__test/rotate  -> adds a new RSA signing key in front (the old one stays published)
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// oidc-provider from this folder's node_modules, or from $MOAT_NODE_MODULES (where the test
// runner may have installed the peers); ESM imports ignore NODE_PATH, hence the explicit path.
async function loadProvider() {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const roots = [process.env.MOAT_NODE_MODULES, path.join(here, 'node_modules')].filter(Boolean);
  for (const root of roots) {
    const pkgFile = path.join(root, 'oidc-provider', 'package.json');
    if (fs.existsSync(pkgFile)) {
      const pkg = JSON.parse(fs.readFileSync(pkgFile, 'utf8'));
      const entry = path.join(root, 'oidc-provider', pkg.main ?? 'lib/index.js');
      return import(pathToFileURL(entry).href);
    }
  }
  throw new Error(`oidc-provider not found in ${roots.join(', ')}`);
}
const { default: Provider, errors } = await loadProvider();

const port = Number(process.argv[2] ?? process.env.MOAT_OIDC_PORT ?? 0);
const audience = process.env.MOAT_OIDC_AUDIENCE ?? 'http://127.0.0.1:1/mcp';
const otherAudience = 'https://other.example/mcp';
const scopes = 'openid mcp:read mcp:write mcp:admin';
const upstreamResources = new Map([
  ['https://upstream.test/mcp', 600],
  ['https://upstream.test/short-ttl', 2],
]);
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

// An `http://127.0.0.1:PORT/...` resource: a gateway or upstream started by a test.
function isLoopbackResource(resource) {
  try {
    const u = new URL(resource);
    return u.protocol === 'http:' && u.hostname === '127.0.0.1' && !u.hash;
  } catch {
    return false;
  }
}

// How long tokens for a resource live, or undefined when the resource is unknown.
function resourceTTL(resource) {
  if ([audience, otherAudience].includes(resource)) return 600;
  if (upstreamResources.has(resource)) return upstreamResources.get(resource);
  if (isLoopbackResource(resource)) return 600;
  return undefined;
}

// Verifies a JWT access token this provider signed (RS256 with one of `keys`) and returns its
// claims, or undefined.
function verifyOwnAccessToken(token, issuer) {
  const parts = String(token).split('.');
  if (parts.length !== 3) return undefined;
  let header;
  let claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
  } catch {
    return undefined;
  }
  const key = keys.find((k) => k.kid === header.kid);
  if (!key || header.alg !== 'RS256') return undefined;
  const ok = crypto.verify(
    'RSA-SHA256',
    Buffer.from(`${parts[0]}.${parts[1]}`),
    key.public_pem,
    Buffer.from(parts[2], 'base64url'),
  );
  const now = Math.floor(Date.now() / 1000);
  if (!ok || claims.iss !== issuer || typeof claims.exp !== 'number' || claims.exp <= now) return undefined;
  return claims;
}

const keys = [];
function newKey() {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = crypto.randomBytes(8).toString('hex');
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  return {
    kid,
    jwk,
    private_pem: privateKey.export({ type: 'pkcs1', format: 'pem' }),
    public_pem: publicKey.export({ type: 'spki', format: 'pem' }),
  };
}
keys.push(newKey());

function makeProvider(issuer) {
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'moat-cc',
        client_secret: 'moat-cc-secret',
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        scope: scopes,
      },
      {
        client_id: 'moat-opaque',
        client_secret: 'moat-opaque-secret',
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        scope: scopes,
      },
      {
        client_id: 'moat-rs',
        client_secret: 'moat-rs-secret',
        grant_types: [],
        redirect_uris: [],
        response_types: [],
      },
      {
        client_id: 'moat-pkce',
        token_endpoint_auth_method: 'none',
        // No refresh_token: this provider does not enable that grant, and a client listing it
        // is refused as invalid metadata.
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: ['http://127.0.0.1/callback'],
        scope: scopes,
      },
      {
        client_id: 'moat-upstream',
        client_secret: 'moat-upstream-secret',
        grant_types: ['client_credentials', TOKEN_EXCHANGE],
        redirect_uris: [],
        response_types: [],
        scope: scopes,
      },
    ],
    jwks: { keys: keys.map((k) => k.jwk) },
    scopes: scopes.split(' '),
    pkce: { required: () => true },
    // RFC 8693 §4.1: an exchanged token names the party acting for the subject.
    extraTokenClaims: async (ctx, token) => (token.gty === 'token_exchange' ? { act: { sub: token.clientId } } : undefined),
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        allowedPolicy: async (ctx, client) => client.clientId === 'moat-rs',
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => audience,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, resourceIndicator, client) => {
          const ttl = resourceTTL(resourceIndicator);
          if (ttl === undefined) {
            throw new errors.InvalidTarget();
          }
          return {
            scope: 'mcp:read mcp:write mcp:admin',
            audience: resourceIndicator,
            accessTokenTTL: ttl,
            ...(client.clientId === 'moat-opaque'
              ? { accessTokenFormat: 'opaque' }
              : { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }),
          };
        },
      },
    },
  });
  provider.on('server_error', (ctx, err) => process.stderr.write(`server_error: ${err.stack}\n`));
  provider.registerGrantType(
    TOKEN_EXCHANGE,
    (ctx) => tokenExchange(provider, ctx),
    ['subject_token', 'subject_token_type', 'requested_token_type', 'resource', 'audience', 'scope'],
  );
  return provider;
}

function invalidGrant(description) {
  const e = new errors.InvalidGrant();
  e.error_description = description;
  return e;
}

// RFC 8693 token exchange: the caller's access token for Moat becomes one for an upstream.
async function tokenExchange(provider, ctx) {
  const { client, params } = ctx.oidc;
  if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest(`subject_token_type must be ${ACCESS_TOKEN_TYPE}`);
  }
  if (params.requested_token_type && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest(`requested_token_type must be ${ACCESS_TOKEN_TYPE}`);
  }
  const subject = verifyOwnAccessToken(params.subject_token, provider.issuer);
  if (!subject) throw invalidGrant('subject_token is invalid or expired');
  const subjectAud = [subject.aud].flat();
  if (!subjectAud.some((a) => a === audience || isLoopbackResource(a))) {
    throw invalidGrant('subject_token was not issued for the gateway');
  }
  const resource = params.resource ?? params.audience;
  const ttl = resource === undefined ? undefined : resourceTTL(resource);
  if (ttl === undefined) throw new errors.InvalidTarget('unknown or missing resource');
  const info = {
    scope: 'mcp:read mcp:write mcp:admin',
    audience: resource,
    accessTokenTTL: ttl,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  };
  const requested = (params.scope ?? '').split(' ').filter(Boolean);
  const allowed = new Set(info.scope.split(' '));
  const scope = requested.filter((s) => allowed.has(s)).join(' ') || undefined;
  const token = new provider.AccessToken({
    accountId: subject.sub,
    client,
    grantId: crypto.randomBytes(8).toString('hex'),
    gty: 'token_exchange',
    scope,
  });
  token.resourceServer = new provider.ResourceServer(resource, info);
  const value = await token.save();
  ctx.body = {
    access_token: value,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: 'Bearer',
    expires_in: token.expiration,
    ...(scope ? { scope } : {}),
  };
}

let current;
const server = http.createServer((req, res) => {
  if (req.url === '/__test/keys' && req.method === 'GET') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({
      keys: keys.map(({ kid, private_pem, public_pem }) => ({ kid, private_pem, public_pem })),
    }));
    return;
  }
  if (req.url === '/__test/rotate' && req.method === 'POST') {
    keys.unshift(newKey());
    current = makeProvider(current.issuer);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ kid: keys[0].kid }));
    return;
  }
  current.callback()(req, res);
});

server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  current = makeProvider(issuer);
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

process.on('SIGTERM', () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
