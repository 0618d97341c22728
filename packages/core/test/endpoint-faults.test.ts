import { setTimeout as sleep } from 'node:timers/promises';
import type { MockOAuthFaults } from '@tokenfleet/mock-oauth';
import { describe, expect, it } from 'vitest';
import {
  createTokenCache,
  InvalidClientError,
  RateLimitedError,
  UnsupportedGrantTypeError,
} from '../src/index.js';
import {
  callRepeatedly,
  EARLY_REFRESH_AHEAD,
  errorsOf,
  redisUrl,
  tokenInRefreshAheadWindow,
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

      const { outcomes } = await callRepeatedly(pods, RETRY_AFTER_SECONDS * 1000 - 1_000);

      expect(fixture.server.counts().tokenRequests).toBe(1);
      expect(tokensOf(outcomes)).toEqual([]);
      for (const error of errorsOf(outcomes)) {
        expect(error).toBeInstanceOf(RateLimitedError);
        expect((error as RateLimitedError).retryAfterMs).toBeLessThanOrEqual(3_000);
      }
    });
  });

  describe('when Retry-After is 0', () => {
    it('still sends at most one request a second', async () => {
      const prefix = uniquePrefix('rate-limited-zero');
      const pods = [1, 2, 3].map(() => fixture.newCache(prefix));
      fixture.server.setFaults({ rateLimit: { retryAfterSeconds: 0 } });

      const { outcomes, elapsedMs } = await callRepeatedly(pods, 1_500);

      const requests = fixture.server.counts().tokenRequests;
      expect(requests).toBeGreaterThanOrEqual(1);
      expect(requests).toBeLessThanOrEqual(Math.floor(elapsedMs / 1_000) + 1);
      for (const error of errorsOf(outcomes)) {
        expect(error).toBeInstanceOf(RateLimitedError);
        expect((error as RateLimitedError).retryAfterMs).toBeLessThanOrEqual(1_000);
      }
    });
  });

  describe('when a usable token is due for refresh', () => {
    it('keeps serving it, then throws RateLimitedError once it ends', async () => {
      const prefix = uniquePrefix('rate-limited-ahead');
      const pods = [1, 2, 3].map(() => fixture.newCache(prefix, EARLY_REFRESH_AHEAD));
      const token = await tokenInRefreshAheadWindow(fixture, pods[0]!);
      fixture.server.setFaults(rateLimit);

      const failed = waitForEvents(pods[0]!, 'refreshFailed', 1);
      expect(await pods[0]!.getToken()).toBe(token);
      await failed;
      const served = await Promise.all(pods.map((pod) => pod.getToken()));
      // Each pod keeps its own deadline, from the PTTL it read, so wait for the pod that is asked.
      const { remainingMs } = await pods[1]!.getTokenInfo();
      await sleep(remainingMs + 50);
      const afterEnd = await pods[1]!.getToken().catch((err: unknown) => err);

      expect(served).toEqual([token, token, token]);
      expect(afterEnd).toBeInstanceOf(RateLimitedError);
      expect((afterEnd as RateLimitedError).retryAfterMs).toBeLessThanOrEqual(3_000);
      expect(fixture.server.counts().tokenRequests).toBe(1);
      expect(fixture.server.counts().tokenSuccesses).toBe(0);
    });
  });
});

describe('createTokenCache options', () => {
  describe('when lockTtlMs leaves too little beyond requestTimeoutMs', () => {
    it('throws ERR_INVALID_ARG_VALUE', () => {
      const create = () =>
        createTokenCache({
          redis: redisUrl,
          provider: fixture.provider(),
          requestTimeoutMs: 5_000,
          lockTtlMs: 5_500,
        });

      expect(create).toThrow(TypeError);
      expect(create).toThrow(
        expect.objectContaining({
          code: 'ERR_INVALID_ARG_VALUE',
          message:
            '"options.lockTtlMs" must be at least 5558, so that it exceeds options.requestTimeoutMs by 500 ms after Redlock\'s clock drift allowance of 1% + 2 ms, received 5500',
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
