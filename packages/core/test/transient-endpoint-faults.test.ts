import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { quiqup, TokenEndpointError, TokenEndpointTimeoutError } from '../src/index.js';
import {
  CLIENT_ID,
  CLIENT_SECRET,
  callRepeatedly,
  EARLY_REFRESH_AHEAD,
  errorsOf,
  TEST_RETRY,
  tokenInRefreshAheadWindow,
  uniquePrefix,
  useFaultFixture,
  waitForEvents,
} from './endpoint-fault-fixture.js';

const fixture = useFaultFixture();

const transientCases = [
  { name: '500', faults: { status: 500 }, status: 500, errorClass: TokenEndpointError },
  { name: '502', faults: { status: 502 }, status: 502, errorClass: TokenEndpointError },
  { name: '503', faults: { status: 503 }, status: 503, errorClass: TokenEndpointError },
  {
    name: 'a reset connection',
    faults: { resetConnection: true },
    status: undefined,
    errorClass: TokenEndpointError,
  },
  {
    name: 'no answer',
    faults: { noAnswer: true },
    status: undefined,
    errorClass: TokenEndpointTimeoutError,
  },
];

/**
 * A short request timeout for the no-answer case. The lock TTL leaves room for every attempt even
 * when a loaded CI machine stalls the test process for seconds, so the count of attempts stays
 * exact.
 */
const SHORT_TIMEOUTS = { requestTimeoutMs: 300, lockTtlMs: 15_000 };

describe('getToken with a token endpoint that fails transiently', () => {
  describe.each(transientCases)('when it answers $name', (fault) => {
    it('sends retry.attempts requests, then throws', async () => {
      const prefix = uniquePrefix('transient');
      const cache = fixture.newCache(prefix, SHORT_TIMEOUTS);
      fixture.server.setFaults(fault.faults);

      const error = await cache.getToken().catch((err: unknown) => err);

      expect(error).toBeInstanceOf(fault.errorClass);
      expect((error as TokenEndpointError).status).toBe(fault.status);
      expect((error as TokenEndpointError).code).toBe(
        fault.errorClass === TokenEndpointTimeoutError
          ? 'TOKENFLEET_TOKEN_ENDPOINT_TIMEOUT'
          : 'TOKENFLEET_TOKEN_ENDPOINT',
      );
      expect((error as Error).message).toMatch(/^token (endpoint failed|request to http)/);
      expect(fixture.server.counts().tokenRequests).toBe(TEST_RETRY.attempts);
      expect(await fixture.redis.exists(fixture.tokenKey(prefix, cache))).toBe(0);
    });

    it('succeeds when the fault clears before the last attempt', async () => {
      const prefix = uniquePrefix('transient-recovers');
      const cache = fixture.newCache(prefix, SHORT_TIMEOUTS);
      fixture.server.setFaults({ ...fault.faults, times: TEST_RETRY.attempts - 1 });

      const info = await cache.getTokenInfo();
      fixture.tokens.add(info.token);

      expect(info.source).toBe('upstream');
      expect(fixture.server.counts().tokenRequests).toBe(TEST_RETRY.attempts);
      expect(fixture.server.isTokenActive(info.token)).toBe(true);
    });

    it('keeps serving the usable token during the refresh ahead', async () => {
      const prefix = uniquePrefix('transient-ahead');
      const cache = fixture.newCache(prefix, { ...SHORT_TIMEOUTS, ...EARLY_REFRESH_AHEAD });
      const token = await tokenInRefreshAheadWindow(fixture, cache);
      fixture.server.setFaults(fault.faults);

      const failed = waitForEvents(cache, 'refreshFailed', TEST_RETRY.attempts);
      const first = await cache.getToken();
      await failed;
      const second = await cache.getToken();

      expect(first).toBe(token);
      expect(second).toBe(token);
      expect(fixture.server.counts().tokenRequests).toBe(TEST_RETRY.attempts);
    });
  });
});

/**
 * Starts a token endpoint that responds to every request with 503 and `Retry-After`, a header the
 * mock sends only with 429. Returns its base URL, a request counter and a close function.
 */
async function startUnavailableEndpoint(retryAfterSeconds: number) {
  let requests = 0;
  const server = createServer((request, response) => {
    requests += 1;
    request.resume();
    request.on('end', () => {
      response.writeHead(503, {
        'Content-Type': 'application/json',
        'Retry-After': String(retryAfterSeconds),
      });
      response.end('{"error":"temporarily_unavailable"}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('getToken with a 503 that sends Retry-After', () => {
  const newUnavailableCache = (prefix: string, baseUrl: string, overrides = {}) =>
    fixture.newCache(prefix, {
      provider: quiqup({
        environment: 'staging',
        baseUrl,
        clientId: CLIENT_ID,
        clientSecret: CLIENT_SECRET,
      }),
      retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 40 },
      ...overrides,
    });

  describe('when the lock outlasts Retry-After', () => {
    it('keeps every pod a Retry-After apart', async () => {
      const endpoint = await startUnavailableEndpoint(1);
      try {
        const prefix = uniquePrefix('unavailable');
        const pods = [1, 2, 3].map(() => newUnavailableCache(prefix, endpoint.url));

        const { outcomes, elapsedMs } = await callRepeatedly(pods, 2_500);

        // The retry inside a refresh waits out Retry-After, and so does the fleet cooldown that
        // follows the last attempt.
        expect(endpoint.requests()).toBeGreaterThanOrEqual(2);
        expect(endpoint.requests()).toBeLessThanOrEqual(Math.floor(elapsedMs / 1_000) + 1);
        for (const error of errorsOf(outcomes)) {
          expect(error).toBeInstanceOf(TokenEndpointError);
          expect((error as TokenEndpointError).status).toBe(503);
        }
      } finally {
        await endpoint.close();
      }
    });
  });

  describe('when Retry-After outlasts the lock', () => {
    it('starts a fleet cooldown after one request', async () => {
      const endpoint = await startUnavailableEndpoint(5);
      try {
        const prefix = uniquePrefix('unavailable-long');
        const timeouts = { requestTimeoutMs: 1_000, lockTtlMs: 2_000 };
        const pods = [1, 2, 3].map(() => newUnavailableCache(prefix, endpoint.url, timeouts));

        const { outcomes } = await callRepeatedly(pods, 1_500);
        const cooldownPttl = await fixture.redis.pttl(fixture.cooldownKey(prefix, pods[0]!));

        expect(endpoint.requests()).toBe(1);
        expect(cooldownPttl).toBeGreaterThan(0);
        expect(cooldownPttl).toBeLessThanOrEqual(5_000);
        for (const error of errorsOf(outcomes)) {
          expect(error).toBeInstanceOf(TokenEndpointError);
          expect((error as TokenEndpointError).retryAfterMs).toBeLessThanOrEqual(5_000);
        }
      } finally {
        await endpoint.close();
      }
    });
  });
});
