// A real OpenID Connect provider for Gatehouse's black-box tests: oidc-provider (npm, pinned in
// package.json) with its built-in development login and consent forms, on plain HTTP on
// 127.0.0.1.
//
// Configuration: one JSON document, as the first argument or in OIDC_PROVIDER_CONFIG:
//
//   {
//     "port": 0,                                  // 0: a free port
//     "clients": [{"client_id", "client_secret"?, "redirect_uris": [...],
//                  "token_endpoint_auth_method": "client_secret_basic" | "client_secret_post" | "none",
//                  "post_logout_redirect_uris"?: [...]}],
//     "users": [{"login", "password", "claims": {"email", "groups": [...], "oid", ...}}],
//     "ttl"?: {"AuthorizationCode": 60, "AccessToken": 3600, "IdToken": 3600, ...},  // seconds
//     "clockTolerance"?: 15                       // seconds
//   }
//
// Once listening it prints `READY <issuer>` (issuer = http://127.0.0.1:<port>) on stdout. It
// runs until killed or until its stdin closes (so it dies with the test process that spawned it).
//
// The development login form accepts any password; the middleware below checks it against the
// user table: a wrong password (or an unknown login) gets the login form again with HTTP 401.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as querystring from 'node:querystring';

import Provider from 'oidc-provider';

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function fail(message) {
  process.stderr.write(`provider.mjs: ${message}\n`);
  process.exit(2);
}

const raw = process.argv[2] ?? process.env.OIDC_PROVIDER_CONFIG;
if (!raw) fail('expected the configuration as JSON (first argument or OIDC_PROVIDER_CONFIG)');
let config;
try {
  config = JSON.parse(raw);
} catch (error) {
  fail(`the configuration is not JSON: ${error.message}`);
}

const users = new Map((config.users ?? []).map((user) => [user.login, user]));

// Exit with the parent: the test process holds our stdin open.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));

// A fresh RS256 signing key per run (instead of oidc-provider's development keys).
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: `test-${randomBytes(6).toString('hex')}`,
  use: 'sig',
  alg: 'RS256',
};

const server = http.createServer();
server.listen(config.port ?? 0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;

  const provider = new Provider(issuer, {
    clients: (config.clients ?? []).map((client) => ({
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      ...client,
    })),
    jwks: { keys: [signingKey] },
    cookies: {
      // Renamed so they never clash with the relying party's cookies on the same host.
      names: {
        session: '_op_session',
        interaction: '_op_interaction',
        resume: '_op_interaction_resume',
      },
      keys: [randomBytes(32).toString('hex')],
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username', 'oid'],
      groups: ['groups'],
    },
    // The ID token carries every claim its scopes grant (not only `sub`).
    conformIdTokenClaims: false,
    clockTolerance: config.clockTolerance ?? 15,
    ...(config.ttl ? { ttl: config.ttl } : {}),
    features: {
      devInteractions: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
    },
    // Refresh tokens for every client allowed the grant, without offline_access.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    async findAccount(_ctx, sub) {
      const user = users.get(sub);
      if (!user) return undefined;
      return {
        accountId: sub,
        async claims() {
          return { sub, ...(user.claims ?? {}) };
        },
      };
    },
  });

  // Checks the password of the development login form.
  provider.use(async (ctx, next) => {
    if (ctx.method === 'POST' && /^\/interaction\/[^/]+$/.test(ctx.path)
      && ctx.is('application/x-www-form-urlencoded')) {
      const chunks = [];
      for await (const chunk of ctx.req) chunks.push(chunk);
      const text = Buffer.concat(chunks).toString('utf8');
      // oidc-provider's body parser falls back to this once the stream is read.
      ctx.req.body = text;
      const body = querystring.parse(text);
      if (body.prompt === 'login') {
        const user = users.get(body.login);
        if (!user || user.password !== body.password) {
          ctx.status = 401;
          ctx.type = 'html';
          ctx.set('cache-control', 'no-store');
          ctx.body = `<!DOCTYPE html><html><head><title>Sign-in</title></head><body>
<p class="error">Invalid login or password.</p>
<form autocomplete="off" action="${escapeHtml(ctx.path)}" method="post">
  <input type="hidden" name="prompt" value="login"/>
  <input required type="text" name="login" placeholder="Enter any login">
  <input required type="password" name="password" placeholder="and password">
  <button type="submit" class="login login-submit">Sign-in</button>
</form></body></html>`;
          return;
        }
      }
    }
    await next();
  });

  server.on('request', provider.callback());
  process.stdout.write(`READY ${issuer}\n`);
});
server.on('error', (error) => fail(`cannot listen: ${error.message}`));
