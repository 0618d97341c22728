// An independent OAuth2 authorization server for tests: oidc-provider 9.13.3 on 127.0.0.1 with the
// client-credentials grant and token introspection, and two confidential clients.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Adapter, AdapterPayload, Configuration, Provider } from 'oidc-provider';

/** Lifetime of an issued token, in seconds; oidc-provider's own default is 600 as well. */
const DEFAULT_TOKEN_TTL_SECONDS = 600;

const TOKEN_PATH = '/token';
const INTROSPECTION_PATH = '/token/introspection';

/** The client authentication methods of RFC 6749 section 2.3.1 that the server registers. */
export type OidcAuthMethod = 'client_secret_basic' | 'client_secret_post';

/** One registered client. The secret goes to the code under test and is never printed. */
export interface OidcClient {
  clientId: string;
  clientSecret: string;
  authMethod: OidcAuthMethod;
}

/** Requests the server has received since it started. */
export interface OidcServerCounts {
  /** POST requests to the token endpoint, whatever their outcome. */
  tokenRequests: number;
  /** Token requests that issued a token (oidc-provider's `grant.success` event). */
  tokensIssued: number;
  /** Token requests that failed with an OAuth error (oidc-provider's `grant.error` event). */
  tokenErrors: number;
  /** POST requests to the introspection endpoint. */
  introspectionRequests: number;
}

export interface OidcServerOptions {
  /** `expires_in` of every issued token, in seconds. Default 600. */
  tokenTtlSeconds?: number;
}

export interface OidcServer {
  /** `http://127.0.0.1:<port>`; also the base of every endpoint URL. */
  issuer: string;
  tokenUrl: string;
  introspectionUrl: string;
  /** One confidential client per authentication method; each may only use that method. */
  clients: Readonly<Record<OidcAuthMethod, OidcClient>>;
  /** Returns a snapshot of the request counters. */
  counts(): OidcServerCounts;
  /** Closes the listening socket and every open connection. */
  close(): Promise<void>;
}

/** The introspection response fields that the tests check (RFC 7662 section 2.2). */
export interface IntrospectionResponse {
  active: boolean;
  client_id?: string;
  token_type?: string;
  iss?: string;
  exp?: number;
  iat?: number;
  scope?: string;
}

/** Starts oidc-provider on a free port of 127.0.0.1 over plain HTTP. */
export async function startOidcServer(options: OidcServerOptions = {}): Promise<OidcServer> {
  const tokenTtlSeconds = options.tokenTtlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;

  // The issuer must name the port, so the socket listens before the provider exists.
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const clients = {
    client_secret_basic: createClient('client_secret_basic'),
    client_secret_post: createClient('client_secret_post'),
  };
  const counts: OidcServerCounts = {
    tokenRequests: 0,
    tokensIssued: 0,
    tokenErrors: 0,
    introspectionRequests: 0,
  };

  const ProviderClass = await importProvider();
  const provider = new ProviderClass(issuer, buildConfiguration(clients, tokenTtlSeconds));
  provider.use(async (ctx, next) => {
    if (ctx.method === 'POST' && ctx.path === TOKEN_PATH) {
      counts.tokenRequests++;
    } else if (ctx.method === 'POST' && ctx.path === INTROSPECTION_PATH) {
      counts.introspectionRequests++;
    }
    await next();
  });
  provider.on('grant.success', () => {
    counts.tokensIssued++;
  });
  provider.on('grant.error', () => {
    counts.tokenErrors++;
  });
  server.on('request', provider.callback());

  return {
    issuer,
    tokenUrl: `${issuer}${TOKEN_PATH}`,
    introspectionUrl: `${issuer}${INTROSPECTION_PATH}`,
    clients,
    counts: () => ({ ...counts }),
    close: () => closeServer(server),
  };
}

/**
 * Sends an introspection request for `token`, authenticating as `client` with its own method.
 * The Basic credentials are encoded here with `encodeURIComponent`, independently of the code
 * under test.
 */
export async function introspect(
  server: OidcServer,
  client: OidcClient,
  token: string,
): Promise<IntrospectionResponse> {
  const params = new URLSearchParams({ token, token_type_hint: 'access_token' });
  const headers: Record<string, string> = {
    accept: 'application/json',
    'content-type': 'application/x-www-form-urlencoded',
  };
  if (client.authMethod === 'client_secret_basic') {
    const credentials = `${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`;
    headers.authorization = `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`;
  } else {
    params.set('client_id', client.clientId);
    params.set('client_secret', client.clientSecret);
  }

  const response = await fetch(server.introspectionUrl, {
    method: 'POST',
    headers,
    body: params.toString(),
  });
  if (response.status !== 200) {
    throw new Error(
      `introspection request failed with HTTP ${response.status}: ${await response.text()}`,
    );
  }
  return (await response.json()) as IntrospectionResponse;
}

function createClient(authMethod: OidcAuthMethod): OidcClient {
  // The secret contains `:`, `+`, a space, `%` and `/`, which RFC 6749 section 2.3.1 requires a
  // client to form-encode before the Basic header joins id and secret. Appendix A.2 allows only
  // printable ASCII (VSCHAR) in a secret, and oidc-provider rejects anything else.
  return {
    clientId: `tokenfleet-${authMethod.replaceAll('_', '-')}`,
    clientSecret: `s:+ %/-${randomBytes(16).toString('hex')}`,
    authMethod,
  };
}

function buildConfiguration(
  clients: Record<OidcAuthMethod, OidcClient>,
  tokenTtlSeconds: number,
): Configuration {
  return {
    clients: Object.values(clients).map((client) => ({
      client_id: client.clientId,
      client_secret: client.clientSecret,
      token_endpoint_auth_method: client.authMethod,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
    })),
    // Without a resource indicator the provider issues an opaque token, the kind that its
    // introspection endpoint accepts (it rejects JWT access tokens).
    features: {
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // A client may introspect only the tokens issued to itself.
        allowedPolicy: (_ctx, client, token) => token.clientId === client.clientId,
      },
      devInteractions: { enabled: false },
    },
    // The settings below replace oidc-provider's development defaults, each of which prints a
    // warning or notice when used.
    adapter: createMemoryAdapterFactory(),
    jwks: { keys: [generateSigningKey()] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    ttl: { ClientCredentials: tokenTtlSeconds },
  };
}

/** Generates an RSA key for RS256, the default signing algorithm of clients and ID tokens. */
function generateSigningKey(): Record<string, unknown> {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256' };
}

interface StoredPayload {
  payload: AdapterPayload;
  /** Date.now() value after which the entry is gone, or Infinity. */
  expiresAt: number;
}

/**
 * Creates in-memory storage for one server, so that two servers in one process never share
 * tokens. It covers the client-credentials grant and introspection, which create no sessions.
 */
function createMemoryAdapterFactory(): (model: string) => Adapter {
  const entries = new Map<string, StoredPayload>();

  const read = (key: string): AdapterPayload | undefined => {
    const entry = entries.get(key);
    if (entry === undefined) {
      return undefined;
    }
    if (entry.expiresAt <= Date.now()) {
      entries.delete(key);
      return undefined;
    }
    return entry.payload;
  };

  return (model) => {
    const keyOf = (id: string) => `${model}:${id}`;
    const findWhere = async (field: 'uid' | 'userCode', value: string) => {
      for (const [key, entry] of entries) {
        if (key.startsWith(`${model}:`) && entry.payload[field] === value) {
          return read(key);
        }
      }
      return undefined;
    };

    return {
      async upsert(id, payload, expiresIn) {
        const expiresAt = expiresIn === undefined ? Infinity : Date.now() + expiresIn * 1000;
        entries.set(keyOf(id), { payload, expiresAt });
      },
      async find(id) {
        return read(keyOf(id));
      },
      findByUid: (uid) => findWhere('uid', uid),
      findByUserCode: (userCode) => findWhere('userCode', userCode),
      async consume(id) {
        const payload = read(keyOf(id));
        if (payload !== undefined) {
          payload.consumed = Math.floor(Date.now() / 1000);
        }
      },
      async destroy(id) {
        entries.delete(keyOf(id));
      },
      async revokeByGrantId(grantId) {
        for (const [key, entry] of entries) {
          if (entry.payload.grantId === grantId) {
            entries.delete(key);
          }
        }
      },
    };
  };
}

/**
 * Imports oidc-provider once. On Node.js 20, which tokenfleet supports, the module prints
 * "Unsupported runtime" when it loads. That one warning is held back, and any other is printed.
 */
let providerClass: Promise<typeof Provider> | undefined;

function importProvider(): Promise<typeof Provider> {
  providerClass ??= (async () => {
    const warn = console.warn;
    console.warn = (...args: unknown[]) => {
      if (!String(args[0]).includes('oidc-provider WARNING: Unsupported runtime')) {
        warn(...args);
      }
    };
    try {
      return (await import('oidc-provider')).default;
    } finally {
      console.warn = warn;
    }
  })();
  return providerClass;
}

async function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve, reject) => {
    server.close((err) => (err ? reject(err) : resolve()));
  });
  // Keep-alive connections of fetch would hold close() open until they time out.
  server.closeAllConnections();
  await closed;
}
