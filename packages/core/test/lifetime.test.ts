import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  InvalidTokenResponseError,
  MAX_STORED_LIFETIME_MS,
  type RenewalRequest,
  storedLifetimeMs,
  TokenEndpointError,
  TokenfleetError,
} from '../src/index.js';
import { MAX_TIMER_DELAY_MS } from '../src/timers.js';
import {
  callRepeatedly,
  errorsOf,
  tokensOf,
  uniquePrefix,
  useFaultFixture,
} from './endpoint-fault-fixture.js';

const fixture = useFaultFixture();

const DAY_MS = 24 * 3_600_000;

/** Reads the stored record's `l` (the PX it was written with) and the key's PTTL. */
async function readStoredLifetime(key: string): Promise<{ lifetimeMs: number; pttlMs: number }> {
  const [value, pttlMs] = await Promise.all([fixture.redis.get(key), fixture.redis.pttl(key)]);
  const record = JSON.parse(value ?? 'null') as { l: number } | null;
  return { lifetimeMs: record?.l ?? Number.NaN, pttlMs };
}

describe('storedLifetimeMs', () => {
  it.each([
    { remainingMs: 3_600_000, skewMs: 60_000, expected: 3_540_000 },
    { remainingMs: 604_800_000, skewMs: 60_000, expected: 604_740_000 },
    { remainingMs: 3_600_000, skewMs: 0, expected: 3_600_000 },
    { remainingMs: 120_000, skewMs: 60_000, expected: 60_000 },
    { remainingMs: 10_000, skewMs: 60_000, expected: 5_000 },
    { remainingMs: 3_600_687.7, skewMs: 60_000, expected: 3_540_687 },
    { remainingMs: 10_001, skewMs: 60_000, expected: 5_000 },
    { remainingMs: 2, skewMs: 60_000, expected: 1 },
  ])('keeps $expected ms of $remainingMs ms with skewMs $skewMs', (sample) => {
    expect(storedLifetimeMs(sample.remainingMs, sample.skewMs)).toBe(sample.expected);
  });

  it.each([0, 1, 1.9, -5, -0.5, Number.NaN, Number.NEGATIVE_INFINITY])(
    'returns 0 for %d ms of life',
    (remainingMs) => {
      expect(storedLifetimeMs(remainingMs, 60_000)).toBe(0);
    },
  );

  it.each([1e300, Number.POSITIVE_INFINITY, MAX_STORED_LIFETIME_MS + 60_001])(
    'caps %d ms at MAX_STORED_LIFETIME_MS',
    (remainingMs) => {
      expect(storedLifetimeMs(remainingMs, 60_000)).toBe(MAX_STORED_LIFETIME_MS);
    },
  );

  it('returns an integer between half the life and the life', () => {
    for (let remainingMs = 1.5; remainingMs < 400_000; remainingMs = remainingMs * 1.7 + 0.3) {
      const lifetimeMs = storedLifetimeMs(remainingMs, 60_000);

      expect(Number.isInteger(lifetimeMs)).toBe(true);
      expect(lifetimeMs).toBeGreaterThanOrEqual(Math.floor(remainingMs / 2));
      expect(lifetimeMs).toBeLessThanOrEqual(remainingMs - Math.min(60_000, remainingMs / 2));
    }
  });
});

describe('getToken with an unusual expires_in', () => {
  describe('when expires_in is 0', () => {
    it('stores nothing and sends one request within the cooldown', async () => {
      const prefix = uniquePrefix('zero-life');
      fixture.server.setExpiresIn(0);
      const pods = [1, 2, 3].map(() => fixture.newCache(prefix));

      const { outcomes } = await callRepeatedly(pods, 1_000);

      expect(tokensOf(outcomes)).toEqual([]);
      const errors = errorsOf(outcomes);
      expect(errors.length).toBeGreaterThan(3);
      const first = errors.find((error) => error instanceof InvalidTokenResponseError);
      expect(first).toMatchObject({
        code: 'TOKENFLEET_INVALID_TOKEN_RESPONSE',
        reason: 'expires_in leaves no usable life',
      });
      for (const error of errors) {
        expect(error).toBeInstanceOf(TokenfleetError);
      }
      expect(fixture.server.counts().tokenRequests).toBe(1);
      expect(await fixture.redis.exists(fixture.tokenKey(prefix, pods[0]!))).toBe(0);
    });
  });

  describe('when expires_in is shorter than skewMs', () => {
    it('stores half the life as an integer PX', async () => {
      const prefix = uniquePrefix('short-life');
      fixture.server.setExpiresIn(10);
      const cache = fixture.newCache(prefix, { skewMs: 60_000 });

      const info = await cache.getTokenInfo();
      fixture.tokens.add(info.token);
      const stored = await readStoredLifetime(fixture.tokenKey(prefix, cache));

      expect(info.source).toBe('upstream');
      expect(Number.isInteger(stored.lifetimeMs)).toBe(true);
      expect(stored.lifetimeMs).toBeLessThanOrEqual(5_000);
      // Half of the life left after the request; the request took far less than 2 s.
      expect(stored.lifetimeMs).toBeGreaterThan(4_000);
      expect(stored.pttlMs).toBeGreaterThan(0);
      expect(stored.pttlMs).toBeLessThanOrEqual(stored.lifetimeMs);
      expect(info.remainingMs).toBeLessThanOrEqual(5_000);
    });
  });

  describe('when expires_in is fractional', () => {
    it('stores an integer PX', async () => {
      const prefix = uniquePrefix('fractional');
      fixture.server.setExpiresIn(3_600.7);
      const cache = fixture.newCache(prefix, { skewMs: 60_000 });

      fixture.tokens.add(await cache.getToken());
      const stored = await readStoredLifetime(fixture.tokenKey(prefix, cache));

      expect(Number.isInteger(stored.lifetimeMs)).toBe(true);
      expect(stored.lifetimeMs).toBeLessThanOrEqual(3_600_700 - 60_000);
      expect(stored.lifetimeMs).toBeGreaterThan(3_600_700 - 60_000 - 2_000);
      expect(stored.pttlMs).toBeLessThanOrEqual(stored.lifetimeMs);
    });
  });

  describe('when expires_in is absurdly large', () => {
    it.each([
      { label: '1e300', value: 1e300 },
      { label: 'a 30-digit string', value: '9'.repeat(30) },
    ])('stores MAX_STORED_LIFETIME_MS for $label after one request', async ({ value }) => {
      const prefix = uniquePrefix('huge-life');
      fixture.server.setFaults({ overrideFields: { expires_in: value } });
      const cache = fixture.newCache(prefix);

      const info = await cache.getTokenInfo();
      fixture.tokens.add(info.token);
      const again = await fixture.newCache(prefix).getTokenInfo();
      const stored = await readStoredLifetime(fixture.tokenKey(prefix, cache));

      expect(info.source).toBe('upstream');
      expect(again.source).toBe('redis');
      expect(stored.lifetimeMs).toBe(MAX_STORED_LIFETIME_MS);
      expect(fixture.server.counts().tokenRequests).toBe(1);
    });
  });
});

/** A token served at `at` ms after the first token request was sent. */
interface ServedToken {
  at: number;
  token: string;
}

/**
 * Calls `getToken()` on every pod every 25 ms until a token other than `first` comes back or
 * `maxMs` has passed since `startedAt`.
 */
async function callUntilNewToken(
  pods: readonly ReturnType<typeof fixture.newCache>[],
  first: string,
  startedAt: number,
  maxMs: number,
): Promise<{ served: ServedToken[]; errors: unknown[] }> {
  const served: ServedToken[] = [];
  const errors: unknown[] = [];
  while (performance.now() - startedAt < maxMs && !served.some((s) => s.token !== first)) {
    for (const pod of pods) {
      try {
        served.push({ token: await fixture.getToken(pod), at: performance.now() - startedAt });
      } catch (error) {
        errors.push(error);
      }
    }
    await sleep(25);
  }
  return { served, errors };
}

describe('getToken with an endpoint that reuses tokens', () => {
  it('serves the token to its end, then fetches a new one', async () => {
    const prefix = uniquePrefix('reuse');
    // A whole number of seconds makes the mock count a reused token down in whole seconds.
    fixture.server.setExpiresIn(4);
    const options = { skewMs: 500, refreshAheadMs: 2_000 };
    const pods = [fixture.newCache(prefix, options), fixture.newCache(prefix, options)];
    const startedAt = performance.now();
    const first = await fixture.getToken(pods[0]!);
    fixture.server.setFaults({ reuseToken: true });

    // The refresh ahead at 2.5 s gets the same token with 1 s left, kept to that end less
    // min(skewMs, 1 s) because Doorkeeper rounds expires_in. The request at its end gets it once
    // more with no usable life, and the one after the stated end gets a new token.
    const { served, errors } = await callUntilNewToken(pods, first, startedAt, 7_000);

    const firstServed = served.filter((s) => s.token === first);
    const next = served.find((s) => s.token !== first);
    expect(next).toBeDefined();
    expect(served.slice(firstServed.length).every((s) => s.token === next?.token)).toBe(true);
    expect(Math.max(...firstServed.map((s) => s.at))).toBeLessThan(4_000);
    expect(Math.max(...firstServed.map((s) => s.at))).toBeGreaterThan(2_500);
    for (const error of errors) {
      expect(error).toBeInstanceOf(TokenfleetError);
      expect(['TOKENFLEET_INVALID_TOKEN_RESPONSE', 'TOKENFLEET_TOKEN_ENDPOINT']).toContain(
        (error as TokenfleetError).code,
      );
      if (error instanceof TokenEndpointError) {
        expect(error.retryAfterMs).toBeLessThanOrEqual(1_000);
      }
    }
    expect(fixture.server.counts().tokenRequests).toBe(4);
  });

  it('sends no request chain when expires_in counts milliseconds', async () => {
    const prefix = uniquePrefix('reuse-ms');
    // A fractional lifetime makes the mock count a reused token down in milliseconds.
    fixture.server.setExpiresIn(2.5);
    const options = { skewMs: 500, refreshAheadMs: 1_500 };
    const pods = [fixture.newCache(prefix, options), fixture.newCache(prefix, options)];
    const startedAt = performance.now();
    const first = await fixture.getToken(pods[0]!);
    fixture.server.setFaults({ reuseToken: true });

    // The refresh ahead at 1.25 s gets the same token with 1.25 s left. Halving the margin on
    // every reuse would ask again at 2.0 s, 2.25 s, 2.375 s and so on until it ends.
    const { served } = await callUntilNewToken(pods, first, startedAt, 5_000);

    expect(served.some((s) => s.token !== first)).toBe(true);
    expect(fixture.server.counts().tokenRequests).toBeGreaterThanOrEqual(3);
    expect(fixture.server.counts().tokenRequests).toBeLessThanOrEqual(4);
  });
});

describe('getToken with a 30-day token', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('never arms a timer beyond 2^31-1 ms and refreshes nothing early', async () => {
    const prefix = uniquePrefix('thirty-days');
    fixture.server.setExpiresIn(30 * 24 * 3_600);
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning);
    process.on('warning', onWarning);
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    const abortTimeoutSpy = vi.spyOn(AbortSignal, 'timeout');
    const renewals: RenewalRequest[] = [];
    const renewal = {
      scheduleRenewal: async (request: RenewalRequest) => void renewals.push(request),
    };

    try {
      const cache = fixture.newCache(prefix, { renewal });
      const info = await cache.getTokenInfo();
      fixture.tokens.add(info.token);
      const other = fixture.newCache(prefix, { renewal });
      const { outcomes } = await callRepeatedly([cache, other], 300, { pauseMs: 5 });
      // Node emits TimeoutOverflowWarning on a later tick.
      await sleep(20);

      expect(info.remainingMs).toBeGreaterThan(MAX_TIMER_DELAY_MS);
      expect(await fixture.redis.pttl(fixture.tokenKey(prefix, cache))).toBeGreaterThan(
        MAX_TIMER_DELAY_MS,
      );
      expect(new Set(tokensOf(outcomes))).toEqual(new Set([info.token]));
      expect(errorsOf(outcomes)).toEqual([]);
      expect(fixture.server.counts().tokenRequests).toBe(1);
      expect(renewals).toHaveLength(1);
      expect(renewals[0]?.delayMs).toBeGreaterThan(29 * DAY_MS);
    } finally {
      process.off('warning', onWarning);
    }

    expect(warnings.filter((warning) => warning.name === 'TimeoutOverflowWarning')).toEqual([]);
    const delays = setTimeoutSpy.mock.calls.map((call) => Number(call[1] ?? 0));
    const signalTimeouts = abortTimeoutSpy.mock.calls.map((call) => Number(call[0]));
    expect(delays.filter((delayMs) => !(delayMs <= MAX_TIMER_DELAY_MS))).toEqual([]);
    expect(signalTimeouts.filter((delayMs) => !(delayMs <= MAX_TIMER_DELAY_MS))).toEqual([]);
    // The request timeout is a setTimeout, so the spy saw at least that one.
    expect(delays.length).toBeGreaterThan(0);
  });
});
