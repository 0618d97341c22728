import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  InvalidClientError,
  TokenCacheClosedError,
  TokenEndpointError,
  TokenEndpointTimeoutError,
} from '../src/errors.js';
import type { TokenRequestContext } from '../src/provider.js';
import {
  DEFAULT_OAUTH2_CLIENT_CREDENTIALS_OPTIONS,
  oauth2ClientCredentials,
} from '../src/providers/oauth2-client-credentials.js';
import { DEFAULT_QUIQUP_OPTIONS, QUIQUP_BASE_URLS, quiqup } from '../src/providers/quiqup.js';

const CLIENT_ID = '3f2a9c1b-client';
const CLIENT_SECRET = 's3cret_7d1e0b2a9c8f';
const TOKEN = 'tok_5a4b3c2d1e0f';

interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

type Handler = (request: RecordedRequest, response: ServerResponse) => void;

/** A token endpoint on 127.0.0.1 that records every request and responds with `handler`. */
class TokenEndpoint {
  readonly requests: RecordedRequest[] = [];
  handler: Handler = (_request, response) => sendJson(response, 200, validToken());
  private readonly server: Server;

  constructor() {
    this.server = createServer((incoming, response) => {
      const chunks: Buffer[] = [];
      incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
      incoming.on('end', () => {
        const request = {
          method: incoming.method ?? '',
          url: incoming.url ?? '',
          headers: incoming.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        };
        this.requests.push(request);
        this.handler(request, response);
      });
    });
  }

  get baseUrl(): string {
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
  }

  reset(): void {
    this.requests.length = 0;
    this.handler = (_request, response) => sendJson(response, 200, validToken());
    this.server.closeAllConnections();
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve, reject) =>
      this.server.close((error) => (error ? reject(error) : resolve())),
    );
  }
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}

function validToken() {
  return { access_token: TOKEN, created_at: 1616571253, expires_in: 3600, token_type: 'bearer' };
}

function context(timeoutMs = 5000): TokenRequestContext {
  return { signal: AbortSignal.timeout(timeoutMs), timeoutMs };
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('promise resolved, expected a rejection');
}

function expectNoSecret(value: unknown): void {
  for (const text of [JSON.stringify(value), inspect(value, { depth: 10 })]) {
    expect(text).not.toContain(CLIENT_SECRET);
    expect(text).not.toContain(TOKEN);
  }
}

/** Decodes an `Authorization: Basic` header as RFC 6749 section 2.3.1 encodes it. */
function decodeBasic(header: string | undefined): [string, string] {
  expect(header).toMatch(/^Basic [A-Za-z0-9+/]+=*$/);
  const decoded = Buffer.from(header!.slice('Basic '.length), 'base64').toString('utf8');
  const separator = decoded.indexOf(':');
  const formDecode = (value: string) => decodeURIComponent(value.replace(/\+/g, ' '));
  return [formDecode(decoded.slice(0, separator)), formDecode(decoded.slice(separator + 1))];
}

const endpoint = new TokenEndpoint();

beforeAll(async () => {
  await endpoint.listen();
});

afterEach(() => {
  endpoint.reset();
});

afterAll(async () => {
  await endpoint.close();
});

describe('quiqup', () => {
  const provider = () =>
    quiqup({
      environment: 'staging',
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      baseUrl: `${endpoint.baseUrl}/`,
    });

  describe('when the endpoint grants a token', () => {
    it('sends the documented JSON request', async () => {
      await provider().requestToken(context());

      expect(endpoint.requests).toHaveLength(1);
      const [request] = endpoint.requests;
      expect(request!.method).toBe('POST');
      expect(request!.url).toBe('/oauth/token');
      expect(request!.headers['content-type']).toBe('application/json');
      expect(request!.headers.accept).toBe('application/json');
      expect(request!.headers.authorization).toBeUndefined();
      expect(JSON.parse(request!.body)).toEqual({
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        grant_type: 'client_credentials',
      });
    });

    it('returns the validated grant', async () => {
      const grant = await provider().requestToken(context());

      expect(grant).toEqual({
        accessToken: TOKEN,
        expiresInMs: 3_600_000,
        expiresInDefaulted: false,
        createdAt: 1616571253,
      });
    });

    it('defaults a missing expires_in to one hour', async () => {
      endpoint.handler = (_request, response) => sendJson(response, 200, { access_token: TOKEN });

      const grant = await provider().requestToken(context());

      expect(grant.expiresInMs).toBe(DEFAULT_QUIQUP_OPTIONS.defaultExpiresInMs);
      expect(grant.expiresInMs).toBe(3_600_000);
      expect(grant.expiresInDefaulted).toBe(true);
    });

    it('uses the fetch option', async () => {
      let calls = 0;
      const countingFetch: typeof fetch = (input, init) => {
        calls += 1;
        return fetch(input, init);
      };
      const custom = quiqup({
        environment: 'staging',
        clientId: CLIENT_ID,
        clientSecret: CLIENT_SECRET,
        baseUrl: endpoint.baseUrl,
        fetch: countingFetch,
      });

      await custom.requestToken(context());

      expect(calls).toBe(1);
      expect(endpoint.requests).toHaveLength(1);
    });
  });

  describe('when the endpoint rejects the client', () => {
    it('throws InvalidClientError for a 401', async () => {
      endpoint.handler = (_request, response) =>
        sendJson(response, 401, { error: 'invalid_client', client_secret: CLIENT_SECRET });

      const error = await rejection(provider().requestToken(context()));

      expect(error).toBeInstanceOf(InvalidClientError);
      expect((error as InvalidClientError).code).toBe('TOKENFLEET_INVALID_CLIENT');
      expect((error as InvalidClientError).status).toBe(401);
      expectNoSecret(error);
    });
  });

  describe('when created for an environment', () => {
    it.each(['production', 'staging'] as const)('targets the %s token URL', (environment) => {
      const created = quiqup({ environment, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });

      expect(created.identity).toEqual({
        tokenUrl: `${QUIQUP_BASE_URLS[environment]}/oauth/token`,
        clientId: CLIENT_ID,
      });
      expect(created.name).toBe('quiqup');
      expect(created.label).toBe(`quiqup ${environment} client 3f2a9c1b…`);
      expect(created.sealingSecret).toBe(CLIENT_SECRET);
    });

    it('documents the Quiqup base URLs', () => {
      expect(QUIQUP_BASE_URLS).toEqual({
        production: 'https://platform-api.quiqup.com',
        staging: 'https://platform-api.staging.quiqup.com',
      });
    });

    it('keeps the secret out of a printed provider', () => {
      const created = quiqup({
        environment: 'staging',
        clientId: CLIENT_ID,
        clientSecret: CLIENT_SECRET,
      });

      expectNoSecret(created);
    });
  });

  describe('when options are invalid', () => {
    const valid = { environment: 'staging', clientId: CLIENT_ID, clientSecret: CLIENT_SECRET };

    it.each([
      [
        { ...valid, clientId: undefined },
        'ERR_INVALID_ARG_TYPE',
        '"options.clientId" must be a non-empty string (received undefined)',
      ],
      [
        { ...valid, clientId: '' },
        'ERR_INVALID_ARG_VALUE',
        '"options.clientId" must be a non-empty string',
      ],
      [
        { ...valid, clientSecret: 42 },
        'ERR_INVALID_ARG_TYPE',
        '"options.clientSecret" must be a non-empty string (received number)',
      ],
      [
        { ...valid, clientSecret: '' },
        'ERR_INVALID_ARG_VALUE',
        '"options.clientSecret" must be a non-empty string',
      ],
      [
        { ...valid, environment: 'prod' },
        'ERR_INVALID_ARG_VALUE',
        `"options.environment" must be 'production' or 'staging' (received "prod")`,
      ],
      [
        { ...valid, baseUrl: 'ftp://example.test' },
        'ERR_INVALID_ARG_VALUE',
        '"options.baseUrl" must be an absolute http or https URL',
      ],
      [
        { ...valid, baseUrl: 'not a url' },
        'ERR_INVALID_ARG_VALUE',
        '"options.baseUrl" must be an absolute http or https URL',
      ],
      [
        { ...valid, defaultExpiresInMs: 0 },
        'ERR_INVALID_ARG_VALUE',
        '"options.defaultExpiresInMs" must be a positive integer of milliseconds (received 0)',
      ],
      [
        { ...valid, defaultExpiresInMs: '60' },
        'ERR_INVALID_ARG_TYPE',
        '"options.defaultExpiresInMs" must be a positive integer of milliseconds (received string)',
      ],
      [
        { ...valid, fetch: 'fetch' },
        'ERR_INVALID_ARG_TYPE',
        '"options.fetch" must be a function (received string)',
      ],
    ])('throws for %j', (options, code, message) => {
      const error = (() => {
        try {
          quiqup(options as never);
        } catch (caught) {
          return caught as TypeError & { code: string };
        }
        throw new Error('quiqup() returned, expected a TypeError');
      })();

      expect(error).toBeInstanceOf(TypeError);
      expect(error.code).toBe(code);
      expect(error.message).toBe(message);
      expect(error.message).not.toContain(CLIENT_SECRET);
    });

    it('throws for a missing options object', () => {
      expect(() => quiqup(undefined as never)).toThrow(
        expect.objectContaining({
          code: 'ERR_INVALID_ARG_TYPE',
          message: '"options" of quiqup() must be an object (received undefined)',
        }),
      );
    });
  });
});

describe('oauth2ClientCredentials', () => {
  const tokenUrl = () => `${endpoint.baseUrl}/oauth2/token`;

  describe('when authMethod is client_secret_basic', () => {
    it('form-encodes the credentials before base64', async () => {
      const clientId = 'svc:reports äöü';
      const clientSecret = 'p@ss:w/rd+&=%';
      const provider = oauth2ClientCredentials({ tokenUrl: tokenUrl(), clientId, clientSecret });

      await provider.requestToken(context());

      const [request] = endpoint.requests;
      const expected = `${encodeForm(clientId)}:${encodeForm(clientSecret)}`;
      expect(request!.headers.authorization).toBe(
        `Basic ${Buffer.from(expected).toString('base64')}`,
      );
      expect(decodeBasic(request!.headers.authorization)).toEqual([clientId, clientSecret]);
      expect(request!.body).toBe('grant_type=client_credentials');
      expect(request!.body).not.toContain('client_secret');
    });

    it('is the default', () => {
      expect(DEFAULT_OAUTH2_CLIENT_CREDENTIALS_OPTIONS.authMethod).toBe('client_secret_basic');
      expect(DEFAULT_OAUTH2_CLIENT_CREDENTIALS_OPTIONS.bodyFormat).toBe('form');
      expect(DEFAULT_OAUTH2_CLIENT_CREDENTIALS_OPTIONS.defaultExpiresInMs).toBe(300_000);
    });
  });

  describe('when authMethod is client_secret_post', () => {
    it('sends the credentials in the form body', async () => {
      const provider = oauth2ClientCredentials({
        tokenUrl: tokenUrl(),
        clientId: CLIENT_ID,
        clientSecret: CLIENT_SECRET,
        authMethod: 'client_secret_post',
      });

      await provider.requestToken(context());

      const [request] = endpoint.requests;
      expect(request!.method).toBe('POST');
      expect(request!.url).toBe('/oauth2/token');
      expect(request!.headers.authorization).toBeUndefined();
      expect(request!.headers['content-type']).toBe('application/x-www-form-urlencoded');
      expect(request!.headers.accept).toBe('application/json');
      expect([...new URLSearchParams(request!.body)]).toEqual([
        ['grant_type', 'client_credentials'],
        ['client_id', CLIENT_ID],
        ['client_secret', CLIENT_SECRET],
      ]);
    });

    it('sends the credentials in a JSON body', async () => {
      const provider = oauth2ClientCredentials({
        tokenUrl: tokenUrl(),
        clientId: CLIENT_ID,
        clientSecret: CLIENT_SECRET,
        authMethod: 'client_secret_post',
        bodyFormat: 'json',
      });

      await provider.requestToken(context());

      const [request] = endpoint.requests;
      expect(request!.headers['content-type']).toBe('application/json');
      expect(JSON.parse(request!.body)).toEqual({
        grant_type: 'client_credentials',
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
      });
    });
  });

  describe('when scope, audience, resource and extraParams are set', () => {
    const options = {
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      scope: ['orders:read', 'orders:write'],
      audience: 'https://api.example.test',
      resource: ['https://a.example.test', 'https://b.example.test'],
      extraParams: { tenant: 'eu-1', account: 'acme' },
    };

    it('sends each of them in the form body', async () => {
      const provider = oauth2ClientCredentials({ ...options, tokenUrl: tokenUrl() });

      await provider.requestToken(context());

      const [request] = endpoint.requests;
      expect([...new URLSearchParams(request!.body)]).toEqual([
        ['grant_type', 'client_credentials'],
        ['scope', 'orders:read orders:write'],
        ['audience', 'https://api.example.test'],
        ['resource', 'https://a.example.test'],
        ['resource', 'https://b.example.test'],
        ['account', 'acme'],
        ['tenant', 'eu-1'],
      ]);
    });

    it('sends each of them in the JSON body', async () => {
      const provider = oauth2ClientCredentials({
        ...options,
        tokenUrl: tokenUrl(),
        bodyFormat: 'json',
      });

      await provider.requestToken(context());

      const [request] = endpoint.requests;
      expect(JSON.parse(request!.body)).toEqual({
        grant_type: 'client_credentials',
        scope: 'orders:read orders:write',
        audience: 'https://api.example.test',
        resource: ['https://a.example.test', 'https://b.example.test'],
        account: 'acme',
        tenant: 'eu-1',
      });
    });

    it('puts each of them into the identity, in a fixed order', () => {
      const provider = oauth2ClientCredentials({
        ...options,
        tokenUrl: 'https://auth.example.test/token',
      });

      expect(Object.entries(provider.identity)).toEqual([
        ['tokenUrl', 'https://auth.example.test/token'],
        ['clientId', CLIENT_ID],
        ['scope', 'orders:read orders:write'],
        ['audience', 'https://api.example.test'],
        ['resource', 'https://a.example.test https://b.example.test'],
        ['extraParams.account', 'acme'],
        ['extraParams.tenant', 'eu-1'],
      ]);
      expect(provider.name).toBe('oauth2');
      expect(provider.label).toBe('oauth2 auth.example.test client 3f2a9c1b…');
      expectNoSecret(provider);
    });

    it('gives the same identity for another key order', () => {
      const first = oauth2ClientCredentials({ ...options, tokenUrl: tokenUrl() });
      const second = oauth2ClientCredentials({
        ...options,
        tokenUrl: tokenUrl(),
        extraParams: { account: 'acme', tenant: 'eu-1' },
      });

      expect(JSON.stringify(second.identity)).toBe(JSON.stringify(first.identity));
    });
  });

  describe('when options are invalid', () => {
    const valid = {
      tokenUrl: 'https://auth.example.test/token',
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
    };

    it.each([
      [
        { ...valid, tokenUrl: 'https://user:pw@auth.example.test/token' },
        'ERR_INVALID_ARG_VALUE',
        '"options.tokenUrl" must not contain user info: pass the credentials as clientId and clientSecret',
      ],
      [
        { ...valid, tokenUrl: 42 },
        'ERR_INVALID_ARG_TYPE',
        '"options.tokenUrl" must be a URL string (received number)',
      ],
      [
        { ...valid, authMethod: 'private_key_jwt' },
        'ERR_INVALID_ARG_VALUE',
        `"options.authMethod" must be 'client_secret_basic' or 'client_secret_post' (received "private_key_jwt")`,
      ],
      [
        { ...valid, bodyFormat: 'xml' },
        'ERR_INVALID_ARG_VALUE',
        `"options.bodyFormat" must be 'form' or 'json' (received "xml")`,
      ],
      [
        { ...valid, scope: '' },
        'ERR_INVALID_ARG_VALUE',
        '"options.scope" must be a non-empty string',
      ],
      [
        { ...valid, scope: [] },
        'ERR_INVALID_ARG_VALUE',
        '"options.scope" must not be an empty list',
      ],
      [
        { ...valid, resource: ['https://a.test', 7] },
        'ERR_INVALID_ARG_TYPE',
        '"options.resource[1]" must be a non-empty string (received number)',
      ],
      [
        { ...valid, audience: '' },
        'ERR_INVALID_ARG_VALUE',
        '"options.audience" must be a non-empty string',
      ],
      [
        { ...valid, extraParams: { grant_type: 'password' } },
        'ERR_INVALID_ARG_VALUE',
        '"options.extraParams.grant_type" is set by the provider: the provider always sends client_credentials',
      ],
      [
        { ...valid, extraParams: { client_secret: 'x' } },
        'ERR_INVALID_ARG_VALUE',
        '"options.extraParams.client_secret" is set by the provider: use options.clientSecret',
      ],
      [
        { ...valid, extraParams: { tenant: 1 } },
        'ERR_INVALID_ARG_TYPE',
        '"options.extraParams.tenant" must be a string (received number)',
      ],
      [
        { ...valid, extraParams: ['x'] },
        'ERR_INVALID_ARG_TYPE',
        '"options.extraParams" must be an object of string values',
      ],
    ])('throws for %j', (options, code, message) => {
      expect(() => oauth2ClientCredentials(options as never)).toThrow(
        expect.objectContaining({ name: 'TypeError', code, message }),
      );
    });
  });
});

describe('sendTokenRequest', () => {
  const provider = () =>
    oauth2ClientCredentials({
      tokenUrl: `${endpoint.baseUrl}/token`,
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      authMethod: 'client_secret_post',
    });

  describe('when the endpoint does not answer in time', () => {
    it('throws TokenEndpointTimeoutError naming requestTimeoutMs', async () => {
      endpoint.handler = () => {
        // Never responds, and reset() closes the connection after the test.
      };

      const error = await rejection(provider().requestToken(context(100)));

      expect(error).toBeInstanceOf(TokenEndpointTimeoutError);
      expect((error as TokenEndpointTimeoutError).code).toBe('TOKENFLEET_TOKEN_ENDPOINT_TIMEOUT');
      expect((error as TokenEndpointTimeoutError).timeoutMs).toBe(100);
      expect(error.message).toBe(
        `token request to ${endpoint.baseUrl} timed out after 100 ms: raise requestTimeoutMs if the endpoint is slow`,
      );
      expectNoSecret(error);
    });

    it('throws TokenEndpointTimeoutError while the body is arriving', async () => {
      endpoint.handler = (_request, response) => {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.write(`{"access_token":"${TOKEN}"`);
      };

      const error = await rejection(provider().requestToken(context(100)));

      expect(error).toBeInstanceOf(TokenEndpointTimeoutError);
      expect((error as TokenEndpointTimeoutError).timeoutMs).toBe(100);
      expectNoSecret(error);
    });
  });

  describe('when the signal aborts with a tokenfleet error', () => {
    it('throws that error', async () => {
      endpoint.handler = () => {};
      const controller = new AbortController();
      const closed = new TokenCacheClosedError();
      const pending = provider().requestToken({ signal: controller.signal, timeoutMs: 5000 });

      controller.abort(closed);

      expect(await rejection(pending)).toBe(closed);
    });
  });

  describe('when the connection fails', () => {
    it('throws TokenEndpointError naming ECONNREFUSED', async () => {
      const closedServer = createServer();
      await new Promise<void>((resolve) => closedServer.listen(0, '127.0.0.1', resolve));
      const { port } = closedServer.address() as AddressInfo;
      await new Promise<void>((resolve) => closedServer.close(() => resolve()));
      const unreachable = oauth2ClientCredentials({
        tokenUrl: `http://127.0.0.1:${port}/token`,
        clientId: CLIENT_ID,
        clientSecret: CLIENT_SECRET,
      });

      const error = await rejection(unreachable.requestToken(context()));

      expect(error.constructor).toBe(TokenEndpointError);
      expect((error as TokenEndpointError).code).toBe('TOKENFLEET_TOKEN_ENDPOINT');
      expect((error as TokenEndpointError).status).toBeUndefined();
      expect(error.message).toBe(
        `token request to http://127.0.0.1:${port} failed before a response arrived (ECONNREFUSED): check that the endpoint is reachable, and retry with back-off`,
      );
      expect(error.cause).toBeInstanceOf(TypeError);
      expectNoSecret(error);
      expectNoSecret(error.cause);
    });

    it('throws TokenEndpointError when the server resets the connection', async () => {
      endpoint.handler = (_request, response) => response.socket?.destroy();

      const error = await rejection(provider().requestToken(context()));

      expect(error.constructor).toBe(TokenEndpointError);
      expect(error.message).toContain('failed before a response arrived (UND_ERR_SOCKET)');
      expectNoSecret(error);
      expectNoSecret(error.cause);
    });
  });

  describe('when the endpoint redirects', () => {
    it('does not follow the redirect', async () => {
      endpoint.handler = (request, response) => {
        if (request.url === '/token') {
          response.writeHead(307, { location: '/elsewhere' });
          response.end();
          return;
        }
        sendJson(response, 200, validToken());
      };

      const error = await rejection(provider().requestToken(context()));

      expect(error.constructor).toBe(TokenEndpointError);
      expect((error as TokenEndpointError).status).toBe(307);
      expect(endpoint.requests.map((request) => request.url)).toEqual(['/token']);
    });
  });
});

function encodeForm(value: string): string {
  return encodeURIComponent(value)
    .replace(/[!'()~]/g, (character) => `%${character.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+');
}
