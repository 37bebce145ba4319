// A real OAuth 2.1 / OpenID Connect authorization server (oidc-provider) for moat-auth's
// integration tests. Test-only: it listens on loopback and exposes its private keys.
//
// Usage: node provider.mjs [PORT]        (or MOAT_OIDC_PORT; 0 = pick a free port)
// On start it prints one line to stdout: `{"issuer":"http://127.0.0.1:PORT"}`.
//
// Resource servers (RFC 8707 resource indicators):
//   MOAT_OIDC_AUDIENCE (default http://127.0.0.1:1/mcp)  -> JWT access tokens (RS256)
//   https://other.example/mcp                            -> JWT access tokens for another audience
// Clients:
//   moat-cc / moat-cc-secret    client_credentials (client_secret_basic), JWT access tokens
//   moat-opaque / moat-opaque-secret  client_credentials, opaque access tokens (for RFC 7662)
//   moat-rs / moat-rs-secret    the resource server itself (introspection)
//   moat-pkce                   authorization_code + PKCE S256, public client,
//                               redirect http://127.0.0.1/callback
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
      return (await import(pathToFileURL(entry).href)).default;
    }
  }
  throw new Error(`oidc-provider not found in ${roots.join(', ')}`);
}
const Provider = await loadProvider();

const port = Number(process.argv[2] ?? process.env.MOAT_OIDC_PORT ?? 0);
const audience = process.env.MOAT_OIDC_AUDIENCE ?? 'http://127.0.0.1:1/mcp';
const otherAudience = 'https://other.example/mcp';
const scopes = 'openid mcp:read mcp:write mcp:admin';

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
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: ['http://127.0.0.1/callback'],
        scope: scopes,
      },
    ],
    jwks: { keys: keys.map((k) => k.jwk) },
    scopes: scopes.split(' '),
    pkce: { required: () => true },
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
          if (![audience, otherAudience].includes(resourceIndicator)) {
            throw new Provider.errors.InvalidTarget();
          }
          return {
            scope: 'mcp:read mcp:write mcp:admin',
            audience: resourceIndicator,
            accessTokenTTL: 600,
            ...(client.clientId === 'moat-opaque'
              ? { accessTokenFormat: 'opaque' }
              : { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }),
          };
        },
      },
    },
  });
  return provider;
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
