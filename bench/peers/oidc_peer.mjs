// node-oidc-provider 9 as the benchmark peer for bench/bench_sso.py: the issue's "minimal config
// with client_credentials, JWT access tokens signed ES256, and its dev interactions".
// Usage: node oidc_peer.mjs PORT  (keys are generated at start; nothing is persisted)
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.argv[2] || 3000);
const issuer = `http://127.0.0.1:${port}`;
const jwk = (type, opts) => ({ ...generateKeyPairSync(type, opts).privateKey.export({ format: 'jwk' }) });
const es256 = { ...jwk('ec', { namedCurve: 'P-256' }), alg: 'ES256', use: 'sig', kid: 'es256' };
const rs256 = { ...jwk('rsa', { modulusLength: 2048 }), alg: 'RS256', use: 'sig', kid: 'rs256' };
const API = 'http://127.0.0.1/api';

const provider = new Provider(issuer, {
  clients: [
    { client_id: 'cc', client_secret: 'cc-secret-cc-secret-cc-secret-cc-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [], scope: 'api:read' },
    { client_id: 'web', client_secret: 'web-secret-web-secret-web-secret-web', grant_types: ['authorization_code'], redirect_uris: ['http://127.0.0.1:9/cb'], response_types: ['code'] },
  ],
  jwks: { keys: [rs256, es256] },
  scopes: ['openid', 'profile', 'api:read'],
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => API,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({ scope: 'api:read', audience: API, accessTokenTTL: 600, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } }),
    },
  },
  pkce: { required: () => true },
  async findAccount(ctx, id) { return { accountId: id, async claims() { return { sub: id }; } }; },
});
provider.proxy = false;
provider.listen(port, '127.0.0.1', () => console.log(`peer listening on ${issuer}`));
