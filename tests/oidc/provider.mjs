// A real OpenID Connect provider for the SSO tests: npm `oidc-provider` with static accounts.
//
//   node tests/oidc/provider.mjs --port 9000 --client-id hub --client-secret S \
//        --redirect-uri http://127.0.0.1:8000/hub/oauth_callback [--accounts accounts.json]
//
// Prints "ready <issuer>" once it listens. Accounts (accounts.json) carry a password and the
// IdP groups that JupyterHub maps to lab roles and projects. The login page checks the password
// (oidc-provider's own development pages accept any), and consent is given with the login, as a
// company IdP configured for a first-party app would.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Provider from 'oidc-provider';

function args(argv) {
  const out = {};
  for (let i = 2; i < argv.length; i += 2) {
    out[argv[i].replace(/^--/, '')] = argv[i + 1];
  }
  return out;
}

const opts = args(process.argv);
const port = Number(opts.port || 9000);
const issuer = `http://127.0.0.1:${port}`;
const here = dirname(fileURLToPath(import.meta.url));
const accounts = JSON.parse(readFileSync(opts.accounts || join(here, 'accounts.json'), 'utf8'));
const SCOPE = 'openid profile groups';

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: opts['client-id'] || 'jupyterhub',
      client_secret: opts['client-secret'] || 'jupyterhub-secret',
      redirect_uris: [opts['redirect-uri']],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic'
    }
  ],
  scopes: ['openid', 'profile', 'groups'],
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'], groups: ['groups'] },
  cookies: { keys: ['oidc-test-cookie-key'] },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    const account = accounts[id];
    if (!account) {
      return undefined;
    }
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, name: account.name, groups: account.groups };
      }
    };
  }
});

const escape = s =>
  String(s).replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`);

function loginPage(uid, error) {
  return `<!doctype html><html><head><title>Test IdP sign-in</title></head><body>
<h1>Test IdP</h1>${error ? `<p role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}">
<label>Username <input name="username" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button></form></body></html>`;
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.on('data', chunk => (body += chunk));
    req.on('end', () => resolve(Object.fromEntries(new URLSearchParams(body))));
    req.on('error', reject);
  });
}

const callback = provider.callback();

const server = createServer(async (req, res) => {
  const m = req.url.match(/^\/interaction\/([^/?]+)/);
  if (!m) {
    return callback(req, res);
  }
  try {
    const details = await provider.interactionDetails(req, res);
    if (req.method === 'GET') {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      return res.end(loginPage(details.uid));
    }
    const form = await readForm(req);
    const account = accounts[form.username];
    if (!account || account.password !== form.password) {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      return res.end(loginPage(details.uid, 'Invalid username or password'));
    }
    const grant = new provider.Grant({
      accountId: form.username,
      clientId: details.params.client_id
    });
    grant.addOIDCScope(SCOPE);
    const grantId = await grant.save();
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: form.username }, consent: { grantId } },
      { mergeWithLastSubmission: false }
    );
  } catch (err) {
    res.writeHead(400, { 'Content-Type': 'text/plain' });
    res.end(`interaction failed: ${err.message}`);
  }
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
