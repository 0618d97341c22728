import { inspect } from 'node:util';
import type { MockOAuthFaults } from '@tokenfleet/mock-oauth';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createAuthorizedFetch,
  oauth2ClientCredentials,
  type TokenCache,
  type TokenProvider,
} from '../src/index.js';
import {
  type CacheOverrides,
  CLIENT_ID,
  CLIENT_SECRET,
  createRecordingFetch,
  findLeaks,
  redisUrl,
  uniquePrefix,
  useFaultFixture,
  waitForEvents,
} from './endpoint-fault-fixture.js';

const fixture = useFaultFixture();

/** Tokens that only appear in the raw bodies below, so the scans add them by hand. */
const FORM_BODY_TOKEN = 'form-body-token-8d41e2';
const TRUNCATED_BODY_TOKEN = 'truncated-body-token-77c0a9';
const SPACED_TOKEN = 'spaced token 3fa9b1';
fixture.tokens.add(FORM_BODY_TOKEN);
fixture.tokens.add(SPACED_TOKEN);
fixture.tokens.add(TRUNCATED_BODY_TOKEN);

const BASIC_CREDENTIALS = Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64');

function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

/** Creates a generic OAuth2 provider for the mock that sends the secret in an HTTP Basic header. */
function basicAuthProvider(): TokenProvider {
  return oauth2ClientCredentials({
    tokenUrl: fixture.server.tokenUrl,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    fetch: createRecordingFetch(fixture.tokens),
  });
}

interface FaultScenario {
  name: string;
  faults?: MockOAuthFaults;
  clientSecret?: string;
  basicAuth?: boolean;
  options?: CacheOverrides;
}

/** Token endpoint faults whose errors and logs must carry neither the secret nor a token. */
const faultScenarios: FaultScenario[] = [
  { name: 'a wrong client secret', clientSecret: `${CLIENT_SECRET}-old` },
  {
    name: 'a 401 that quotes the secret',
    faults: {
      status: 401,
      body: {
        error: 'invalid_client',
        error_description: `no client with secret ${CLIENT_SECRET}`,
      },
    },
  },
  {
    name: 'a 400 that echoes the request',
    faults: {
      status: 400,
      body: {
        error: 'invalid_request',
        request: { client_id: CLIENT_ID, client_secret: CLIENT_SECRET, grant_type: 'x' },
      },
    },
  },
  {
    name: 'a 502 HTML page that shows the request body',
    faults: {
      status: 502,
      htmlBody: `<html><body><h1>Bad Gateway</h1><pre>${escapeHtml(
        JSON.stringify({ client_id: CLIENT_ID, client_secret: CLIENT_SECRET }),
      )}</pre></body></html>`,
    },
  },
  {
    name: 'a 500 that echoes the Authorization header',
    basicAuth: true,
    faults: {
      status: 500,
      body: { error: 'server_error', headers: { authorization: `Basic ${BASIC_CREDENTIALS}` } },
    },
  },
  { name: 'token_type "mac"', faults: { overrideFields: { token_type: 'mac' } } },
  { name: 'expires_in -5', faults: { overrideFields: { expires_in: -5 } } },
  { name: 'expires_in 0', faults: { overrideFields: { expires_in: 0 } } },
  { name: 'a token with a space', faults: { overrideFields: { access_token: SPACED_TOKEN } } },
  {
    name: 'a form-encoded token',
    faults: {
      body: `access_token=${FORM_BODY_TOKEN}&token_type=bearer&expires_in=3600`,
      contentType: 'application/x-www-form-urlencoded',
    },
  },
  {
    name: 'a truncated JSON body',
    faults: { body: `{"access_token":"${TRUNCATED_BODY_TOKEN}","expires_in":36` },
  },
  { name: 'a 429', faults: { rateLimit: { retryAfterSeconds: 1 } } },
  { name: 'a reset connection', faults: { resetConnection: true } },
  {
    name: 'no answer',
    faults: { noAnswer: true },
    options: { requestTimeoutMs: 100, lockTtlMs: 3_000 },
  },
];

/** Runs one scenario with a fresh cache and returns every error it raised. */
async function runFaultScenario(scenario: FaultScenario): Promise<unknown[]> {
  const prefix = uniquePrefix('secrets');
  const cache = fixture.newCache(prefix, {
    clientSecret: scenario.clientSecret,
    provider: scenario.basicAuth ? basicAuthProvider() : undefined,
    ...scenario.options,
  });
  const authorizedFetch = createAuthorizedFetch(cache);
  fixture.server.setFaults(scenario.faults ?? {});

  const errors: unknown[] = [];
  for (const attempt of [
    () => cache.getToken(),
    () => authorizedFetch(fixture.server.resourceUrl),
  ]) {
    try {
      await attempt();
    } catch (error) {
      errors.push(error);
    }
  }
  fixture.server.clearFaults();
  return errors;
}

/** Runs the paths that handle a real token: issue, refresh, refresh ahead, 401, invalidation. */
async function runTokenLifecycle(): Promise<void> {
  const prefix = uniquePrefix('secrets-lifecycle');
  fixture.server.setExpiresIn(2);
  const cache = fixture.newCache(prefix, {
    skewMs: 0,
    refreshAheadMs: (lifetimeMs) => lifetimeMs,
  });
  const other = fixture.newCache(prefix);
  const authorizedFetch = createAuthorizedFetch(cache);

  const first = await fixture.getToken(cache);
  await fixture.getToken(other);
  fixture.tokens.add((await cache.refresh()).token);
  fixture.server.revokeTokens();
  await authorizedFetch(fixture.server.resourceUrl);
  await cache.invalidate(first);

  // The refresh ahead of a 2 s token starts 1.1 s after it arrived.
  const refreshed = waitForEvents(cache, 'refreshed', 1);
  const { remainingMs } = await cache.getTokenInfo();
  await new Promise((resolve) => setTimeout(resolve, remainingMs * 0.55 + 50));
  await fixture.getToken(cache);
  await refreshed;
  await fixture.getToken(cache);
  fixture.server.setExpiresIn(3_600);
}

/** Joins every string form of an error that a caller might log or show. */
function renderError(error: unknown): string {
  return [
    JSON.stringify(error),
    inspect(error, { depth: Number.POSITIVE_INFINITY, showHidden: true }),
    inspect(error),
    String(error),
    (error as Error).stack ?? '',
  ].join('\n');
}

/** Hashes of every token the mock issued, for {@link findLeaks}. */
function issuedHashes(): Set<string> {
  return new Set(fixture.server.issuedTokens().map((info) => info.tokenHash));
}

describe('token cache secrets', () => {
  describe('when a token is stored', () => {
    it('keeps the token out of the Redis value and the events channel', async () => {
      const prefix = uniquePrefix('secrets-redis');
      const cache: TokenCache = fixture.newCache(prefix);
      const subscriber = new Redis(redisUrl);
      const messages: string[] = [];
      subscriber.on('message', (_channel: string, message: string) => messages.push(message));
      await subscriber.subscribe(`${prefix}:{${cache.id}}:events`);

      try {
        await fixture.getToken(cache);
        const { token } = await cache.refresh();
        fixture.tokens.add(token);
        const raw = await fixture.redis.get(fixture.tokenKey(prefix, cache));
        await cache.invalidate(token);
        await new Promise((resolve) => setTimeout(resolve, 50));

        expect(raw).toEqual(expect.any(String));
        expect(findLeaks(raw ?? '', fixture.tokens, issuedHashes())).toEqual([]);
        expect(messages.length).toBeGreaterThanOrEqual(3);
        expect(findLeaks(messages.join('\n'), fixture.tokens, issuedHashes())).toEqual([]);
      } finally {
        await subscriber.quit();
      }
    });
  });

  describe.each(faultScenarios)('when the token endpoint answers with $name', (scenario) => {
    it('raises errors that print neither the secret nor a token', async () => {
      const errors = await runFaultScenario(scenario);

      expect(errors.length).toBeGreaterThan(0);
      for (const error of errors) {
        // pino's error serializer is the way most callers print it.
        fixture.capture.logger.error({ err: error }, 'caught in test');
        expect(findLeaks(renderError(error), fixture.tokens, issuedHashes())).toEqual([]);
      }
    });
  });
});

// Runs after every test of this file, and before the fixture closes the server: the same faults
// and a whole token lifecycle once more, then one scan of everything the caches logged.
afterAll(async () => {
  for (const scenario of faultScenarios) {
    await runFaultScenario(scenario);
  }
  await runTokenLifecycle();

  const captured = fixture.capture.text();
  expect(captured.length).toBeGreaterThan(0);
  expect(captured).toContain('"level":20');
  expect(findLeaks(captured, fixture.tokens, issuedHashes())).toEqual([]);
});
