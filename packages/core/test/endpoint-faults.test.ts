import { setTimeout as sleep } from 'node:timers/promises';
import type { MockOAuthFaults } from '@tokenfleet/mock-oauth';
import { describe, expect, it } from 'vitest';
import {
  createTokenCache,
  InvalidClientError,
  RateLimitedError,
  TokenEndpointError,
  TokenEndpointTimeoutError,
  UnsupportedGrantTypeError,
} from '../src/index.js';
import {
  callRepeatedly,
  errorsOf,
  redisUrl,
  TEST_RETRY,
  tokensOf,
  uniquePrefix,
  useFaultFixture,
  waitForEvents,
} from './endpoint-fault-fixture.js';

const fixture = useFaultFixture();

/** Scaled-down fleet cooldown after a rejected client. */
const REJECTED_COOLDOWN_MS = 1_000;

/** Scaled-down `Retry-After` of the 429 cases, in seconds. */
const RETRY_AFTER_SECONDS = 3;

/**
 * Options that put a 2 s token into its refresh-ahead window 1.1 s after it arrived: no skew, and
 * a margin of the whole life, which the cache cuts to 90%, of which pods act on the later half.
 */
const EARLY_REFRESH_AHEAD = { skewMs: 0, refreshAheadMs: (lifetimeMs: number) => lifetimeMs };
const SHORT_TOKEN_SECONDS = 2;

/** Fetches a 2 s token, then sleeps until it is inside its refresh-ahead window. */
async function tokenInRefreshAheadWindow(cache: ReturnType<typeof fixture.newCache>) {
  fixture.server.setExpiresIn(SHORT_TOKEN_SECONDS);
  const info = await cache.getTokenInfo();
  fixture.tokens.add(info.token);
  // The window opens when 45% of the life is left (half of the 90% margin).
  await sleep(Math.ceil(info.remainingMs * 0.55) + 50);
  fixture.server.resetCounts();
  return info.token;
}

const rejectedClientCases = [
  {
    name: '401 invalid_client',
    faults: undefined,
    clientSecret: 'wrong-secret',
    errorClass: InvalidClientError,
    code: 'TOKENFLEET_INVALID_CLIENT',
    status: 401,
    oauthError: 'invalid_client',
    message:
      /^token endpoint rejected the client \(HTTP 401 invalid_client\): check clientId and clientSecret/,
  },
  {
    name: '400 unsupported_grant_type',
    faults: {
      status: 400,
      body: { error: 'unsupported_grant_type', error_description: 'grant type not allowed' },
    } satisfies MockOAuthFaults,
    clientSecret: undefined,
    errorClass: UnsupportedGrantTypeError,
    code: 'TOKENFLEET_UNSUPPORTED_GRANT_TYPE',
    status: 400,
    oauthError: 'unsupported_grant_type',
    message:
      /^token endpoint rejected the grant type \(HTTP 400 unsupported_grant_type\): the client must be allowed the client_credentials grant/,
  },
];

describe('getToken with a token endpoint that rejects the client', () => {
  describe.each(rejectedClientCases)('when it answers $name', (fault) => {
    it('throws the typed error after one request', async () => {
      const prefix = uniquePrefix('rejected');
      const cache = fixture.newCache(prefix, {
        clientSecret: fault.clientSecret,
        rejectedClientCooldownMs: REJECTED_COOLDOWN_MS,
      });
      if (fault.faults !== undefined) {
        fixture.server.setFaults(fault.faults);
      }

      const error = await cache.getToken().catch((err: unknown) => err);

      expect(error).toBeInstanceOf(fault.errorClass);
      expect(error).toMatchObject({
        code: fault.code,
        status: fault.status,
        oauthError: fault.oauthError,
      });
      expect((error as Error).message).toMatch(fault.message);
      expect(fixture.server.counts().tokenRequests).toBe(1);
      expect(await fixture.redis.exists(fixture.tokenKey(prefix, cache))).toBe(0);
    });

    it('starts a fleet cooldown that raises the same error', async () => {
      const prefix = uniquePrefix('rejected-cooldown');
      const cache = fixture.newCache(prefix, {
        clientSecret: fault.clientSecret,
        rejectedClientCooldownMs: REJECTED_COOLDOWN_MS,
      });
      if (fault.faults !== undefined) {
        fixture.server.setFaults(fault.faults);
      }
      await cache.getToken().catch(() => undefined);

      const other = fixture.newCache(prefix, { clientSecret: fault.clientSecret });
      const error = await other.getToken().catch((err: unknown) => err);
      const cooldownPttl = await fixture.redis.pttl(fixture.cooldownKey(prefix, cache));

      expect(error).toBeInstanceOf(fault.errorClass);
      expect(error).toMatchObject({ code: fault.code, status: fault.status });
      expect((error as Error).message).toMatch(/\(fleet cooldown: next token request in 1 s\)$/);
      expect((error as InvalidClientError).retryAfterMs).toBeGreaterThan(0);
      expect((error as InvalidClientError).retryAfterMs).toBeLessThanOrEqual(REJECTED_COOLDOWN_MS);
      expect(cooldownPttl).toBeGreaterThan(0);
      expect(cooldownPttl).toBeLessThanOrEqual(REJECTED_COOLDOWN_MS);
      expect(fixture.server.counts().tokenRequests).toBe(1);
    });

    it('sends at most one request per cooldown across three pods', async () => {
      const prefix = uniquePrefix('rejected-fleet');
      const pods = [1, 2, 3].map(() =>
        fixture.newCache(prefix, {
          clientSecret: fault.clientSecret,
          rejectedClientCooldownMs: REJECTED_COOLDOWN_MS,
        }),
      );
      if (fault.faults !== undefined) {
        fixture.server.setFaults(fault.faults);
      }

      const { outcomes, elapsedMs } = await callRepeatedly(pods, 2_500);

      // Each request happens under the lock after a read that found no cooldown, and the
      // cooldown is written before the lock is released: requests are at least a cooldown apart.
      const bound = Math.floor(elapsedMs / REJECTED_COOLDOWN_MS) + 1;
      const requests = fixture.server.counts().tokenRequests;
      expect(requests).toBeGreaterThanOrEqual(1);
      expect(requests).toBeLessThanOrEqual(bound);
      expect(tokensOf(outcomes)).toEqual([]);
      for (const error of errorsOf(outcomes)) {
        expect(error).toBeInstanceOf(fault.errorClass);
        expect((error as InvalidClientError).code).toBe(fault.code);
      }
    });
  });
});

describe('getToken with a token endpoint that answers 429', () => {
  const rateLimit = { rateLimit: { retryAfterSeconds: RETRY_AFTER_SECONDS } };

  describe('when no token is cached', () => {
    it('throws RateLimitedError with retryAfterMs from Retry-After', async () => {
      const prefix = uniquePrefix('rate-limited');
      const cache = fixture.newCache(prefix);
      fixture.server.setFaults(rateLimit);

      const first = await cache.getToken().catch((err: unknown) => err);
      const second = await cache.getToken().catch((err: unknown) => err);

      expect(first).toBeInstanceOf(RateLimitedError);
      expect(first).toMatchObject({
        code: 'TOKENFLEET_RATE_LIMITED',
        status: 429,
        retryAfterMs: RETRY_AFTER_SECONDS * 1000,
      });
      expect((first as Error).message).toMatch(
        /^token endpoint rate-limited the client \(HTTP 429\)/,
      );
      expect(second).toBeInstanceOf(RateLimitedError);
      expect((second as Error).message).toMatch(/fleet cooldown: next token request in 3 s/);
      expect((second as RateLimitedError).retryAfterMs).toBeGreaterThan(0);
      expect((second as RateLimitedError).retryAfterMs).toBeLessThanOrEqual(3_000);
      expect(fixture.server.counts().tokenRequests).toBe(1);
    });

    it('sends one request for three pods until Retry-After passes', async () => {
      const prefix = uniquePrefix('rate-limited-fleet');
      const pods = [1, 2, 3].map(() => fixture.newCache(prefix));
      fixture.server.setFaults(rateLimit);

      const { outcomes } = await callRepeatedly(pods, RETRY_AFTER_SECONDS * 1000 - 500);

      expect(fixture.server.counts().tokenRequests).toBe(1);
      expect(tokensOf(outcomes)).toEqual([]);
      for (const error of errorsOf(outcomes)) {
        expect(error).toBeInstanceOf(RateLimitedError);
        expect((error as RateLimitedError).retryAfterMs).toBeLessThanOrEqual(3_000);
      }
    });
  });

  describe('when a usable token is due for refresh', () => {
    it('keeps serving it, then throws RateLimitedError once it ends', async () => {
      const prefix = uniquePrefix('rate-limited-ahead');
      const pods = [1, 2, 3].map(() => fixture.newCache(prefix, EARLY_REFRESH_AHEAD));
      const token = await tokenInRefreshAheadWindow(pods[0]!);
      fixture.server.setFaults(rateLimit);

      const failed = waitForEvents(pods[0]!, 'refreshFailed', 1);
      expect(await pods[0]!.getToken()).toBe(token);
      await failed;
      const served = await Promise.all(pods.map((pod) => pod.getToken()));
      const { remainingMs } = await pods[0]!.getTokenInfo();
      await sleep(remainingMs + 20);
      const afterEnd = await pods[1]!.getToken().catch((err: unknown) => err);

      expect(served).toEqual([token, token, token]);
      expect(afterEnd).toBeInstanceOf(RateLimitedError);
      expect((afterEnd as RateLimitedError).retryAfterMs).toBeLessThanOrEqual(3_000);
      expect(fixture.server.counts().tokenRequests).toBe(1);
      expect(fixture.server.counts().tokenSuccesses).toBe(0);
    });
  });
});

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

/** A short request timeout for the no-answer case, with the shortest lock TTL allowed. */
const SHORT_TIMEOUTS = { requestTimeoutMs: 100, lockTtlMs: 1_100 };

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
      const token = await tokenInRefreshAheadWindow(cache);
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

describe('createTokenCache options', () => {
  describe('when lockTtlMs leaves less than 1000 ms beyond requestTimeoutMs', () => {
    it('throws ERR_INVALID_ARG_VALUE', () => {
      const create = () =>
        createTokenCache({
          redis: redisUrl,
          provider: fixture.provider(),
          requestTimeoutMs: 5_000,
          lockTtlMs: 5_999,
        });

      expect(create).toThrow(TypeError);
      expect(create).toThrow(
        expect.objectContaining({
          code: 'ERR_INVALID_ARG_VALUE',
          message:
            '"options.lockTtlMs" must be at least options.requestTimeoutMs + 1000 (6000), received 5999',
        }),
      );
    });

    it('accepts exactly requestTimeoutMs + 1000', async () => {
      const cache = fixture.newCache(uniquePrefix('lock-ttl'), {
        requestTimeoutMs: 5_000,
        lockTtlMs: 6_000,
      });

      expect(cache.id).toMatch(/^[0-9a-f]{32}$/);
    });
  });
});
