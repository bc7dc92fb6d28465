// A real OpenID Provider for Trainyard's tests: panva's certified oidc-provider, configured like
// a company IdP in front of Trainyard. platform/testing/trainyard_testing/oidc.py starts it.
//
//   node provider.mjs CONFIG.json
//
// CONFIG.json (written by the harness; it holds the web client's secret, so keep it 0600):
//   issuer          "http://127.0.0.1:PORT"      the `iss` of every token (no trailing slash)
//   port            PORT                          listens on 127.0.0.1 only
//   jwks_file       "/path/keys.json"             {"keys": [private JWKs]}: the signing keys.
//                                                 Rotation = restart with another file.
//   accounts        {"alice": {"email", "name", "groups": [...]}}  the user directory
//   audience        "trainyard-api"               the `aud` of API access tokens
//   resource        "urn:trainyard:api"           the API's resource indicator (RFC 8707); it is
//                                                 the default resource, so clients need not send it
//   api_scopes      ["api"]                       scopes of the API resource
//   groups_claim    "groups"                      the claim that carries the groups
//   access_token_ttl_s  600
//   cli_client      {"client_id"}                 public: device flow + code/PKCE, loopback redirect
//   web_client      {"client_id", "client_secret", "redirect_uris": [...]}  confidential: code/PKCE
//   admin_token     "..."                         bearer for PUT /_test/accounts/<sub> (upsert a user)
//                                                 and the initial access token of client registration
//
// Sign-in is a plain HTML form (GET /interaction/<uid> -> POST .../login with `login=<subject>`,
// no password: the directory is the test's), then a consent form (POST .../consent) when the
// client has no grant yet. Anything that speaks HTTP and submits forms completes it.

import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const jwks = JSON.parse(readFileSync(config.jwks_file, 'utf8'));
const accounts = new Map(Object.entries(config.accounts ?? {}));
const groupsClaim = config.groups_claim ?? 'groups';
const apiScopes = config.api_scopes ?? ['api'];

// The profile a token carries for `sub`; an unknown subject cannot sign in.
function profile(sub) {
  const account = accounts.get(sub);
  if (!account) return undefined;
  return {
    sub,
    email: account.email ?? `${sub}@example.test`,
    email_verified: true,
    name: account.name ?? sub,
    [groupsClaim]: account.groups ?? [],
  };
}

const escapeHtml = (value) => String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body>${body}</body></html>`;

const provider = new Provider(config.issuer, {
  jwks,
  clients: [
    {
      client_id: config.cli_client.client_id,
      client_name: 'Trainyard CLI',
      application_type: 'native', // loopback redirect URIs match on any port (RFC 8252)
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
    },
    {
      client_id: config.web_client.client_id,
      client_secret: config.web_client.client_secret,
      client_name: 'Trainyard web',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: config.web_client.redirect_uris,
    },
  ],
  // Public clients must use PKCE anyway; the confidential one is held to it too.
  pkce: { required: () => true },
  async findAccount(_ctx, sub) {
    const claims = profile(sub);
    if (!claims) return undefined;
    return { accountId: sub, claims: async () => claims };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: [groupsClaim],
  },
  // The API's access tokens are JWTs carrying who the user is and their groups (as Keycloak,
  // Entra ID and Okta can be set to), so the API verifies them without calling the IdP.
  async extraTokenClaims(_ctx, token) {
    if (token.kind !== 'AccessToken' || !token.accountId) return undefined;
    const { sub: _sub, ...claims } = profile(token.accountId) ?? {};
    return claims;
  },
  // Refresh tokens for every client allowed the grant (no offline_access dance).
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  features: {
    devInteractions: { enabled: false }, // our own form below, stable for the harness
    deviceFlow: {
      enabled: true,
      // Plain pages: the harness submits the forms oidc-provider renders into them.
      async userCodeInputSource(ctx, form, _out, err) {
        ctx.body = page('Sign-in', `${err ? '<p class="error">The code is not valid.</p>' : ''}${form}`);
      },
      async userCodeConfirmSource(ctx, form, _client, _info, userCode) {
        ctx.body = page('Confirm device', `<p>Code <code>${escapeHtml(userCode)}</code></p>${form}`);
      },
      async successSource(ctx) {
        ctx.body = page('Signed in', '<p id="device-success">Signed in. You can close this page.</p>');
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => config.resource,
      useGrantedResource: async () => true,
      async getResourceServerInfo(_ctx, indicator) {
        if (indicator !== config.resource) throw new errors.InvalidTarget();
        return {
          audience: config.audience,
          scope: apiScopes.join(' '),
          accessTokenFormat: 'jwt',
          accessTokenTTL: config.access_token_ttl_s ?? 600,
        };
      },
    },
    // Tests add clients at run time (the web app on a port known later) the standard way.
    registration: { enabled: true, initialAccessToken: config.admin_token },
    revocation: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups', ...apiScopes],
  ttl: {
    AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 600,
    IdToken: 600,
    RefreshToken: 24 * 3600,
    DeviceCode: 600,
    Interaction: 600,
    Session: 3600,
    Grant: 24 * 3600,
  },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', `<pre id="error">${escapeHtml(JSON.stringify(out))}</pre>`);
  },
});

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

// The sign-in pages and the test directory; the provider's own routes answer everything else.
provider.use(async (ctx, next) => {
  const interaction = ctx.path.match(/^\/interaction\/([\w-]+)(?:\/(login|consent|abort))?$/);
  if (interaction) {
    const [, uid, action] = interaction;
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== uid) ctx.throw(400, 'interaction mismatch');
    const { prompt, params, session, grantId } = details;
    if (!action && ctx.method === 'GET') {
      ctx.set('Cache-Control', 'no-store');
      ctx.type = 'html';
      ctx.body = prompt.name === 'login'
        ? page('Sign in', `<form method="post" action="/interaction/${uid}/login"><input type="text" name="login" autofocus><button type="submit">Sign in</button></form>`)
        : page('Authorize', `<p>Allow ${escapeHtml(params.client_id)}?</p><form method="post" action="/interaction/${uid}/consent"><button type="submit">Allow</button></form>`);
      return;
    }
    if (ctx.method !== 'POST') ctx.throw(405);
    let result;
    if (action === 'login') {
      const login = (await readForm(ctx.req)).get('login') ?? '';
      result = accounts.has(login)
        ? { login: { accountId: login } }
        : { error: 'access_denied', error_description: 'unknown user' };
    } else if (action === 'consent') {
      // Grant everything asked for (what pressing "Allow" means).
      const grant = grantId
        ? await provider.Grant.find(grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
      if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
      if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      result = { consent: { grantId: await grant.save() } };
    } else {
      result = { error: 'access_denied', error_description: 'the user cancelled' };
    }
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {
      mergeWithLastSubmission: action === 'consent',
    });
    ctx.status = 303;
    ctx.redirect(returnTo);
    return;
  }

  const account = ctx.path.match(/^\/_test\/accounts\/([^/]+)$/);
  if (account && ctx.method === 'PUT') {
    if (ctx.get('authorization') !== `Bearer ${config.admin_token}`) ctx.throw(401);
    const body = await readJson(ctx.req);
    accounts.set(decodeURIComponent(account[1]), body);
    ctx.status = 204;
    return;
  }
  await next();
});

const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${config.issuer}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections(); // keep-alive clients would hold close() open
  });
}
