// Options that resolveTokenCacheOptions() accepts but that make the cache unusable.
import {
  createTokenCache,
  type DegradedEvent,
  type TokenCache,
  type TokenCacheOptions,
} from '@tokenfleet/core';
import { describe, expect, it } from 'vitest';
import {
  mockProvider,
  settledWithin,
  uniquePrefix,
  useReviewEnvironment,
} from './review-helpers.js';

const env = useReviewEnvironment();

/** Creates a cache, or returns the TypeError that rejects the options (either outcome is acceptable). */
function tryCreate(overrides: Partial<TokenCacheOptions>): TokenCache | TypeError {
  try {
    const cache = createTokenCache({
      redis: env.redisServer.url,
      keyPrefix: uniquePrefix('review-options'),
      provider: mockProvider(env.server),
      ...overrides,
    });
    env.track(cache);
    return cache;
  } catch (error) {
    return error as TypeError;
  }
}

describe('createTokenCache options that validation accepts', () => {
  // Redlock subtracts a drift of 1% of the TTL + 2 ms from the lease, so lockTtlMs =
  // requestTimeoutMs + 1000 leaves less than requestTimeoutMs once requestTimeoutMs >= ~98.8 s,
  // and #requestWithRetries throws LockTimeoutError before the first request.
  it('either rejects lockTtlMs = requestTimeoutMs + 1000 for a 100 s timeout, or gets a token', async () => {
    const cache = tryCreate({ requestTimeoutMs: 100_000, lockTtlMs: 101_000 });
    if (cache instanceof TypeError) {
      expect(cache.message).toMatch(/lockTtlMs/);
      return;
    }
    await expect(cache.getTokenInfo()).resolves.toMatchObject({ source: 'upstream' });
  });

  // Node's timers turn any delay above 2^31-1 ms into 1 ms, so a redisTimeoutMs of 2^31 makes
  // every Redis command "time out" at once and the cache runs degraded on a healthy Redis.
  it('either rejects redisTimeoutMs = 2^31, or keeps the token in Redis', async () => {
    const cache = tryCreate({ redisTimeoutMs: 2 ** 31 });
    if (cache instanceof TypeError) {
      expect(cache.message).toMatch(/redisTimeoutMs/);
      return;
    }
    const degraded: DegradedEvent[] = [];
    cache.on('degraded', (event) => degraded.push(event));
    const info = await settledWithin(cache.getTokenInfo(), 10_000);

    expect(degraded.map((event) => event.err.message)).toEqual([]);
    expect(info).toMatchObject({ source: 'upstream', generation: 1 });
  });

  // AbortSignal.timeout(2^31) fires after 1 ms as well: every token request is aborted at once.
  it('either rejects requestTimeoutMs = 2^31, or gets a token', async () => {
    const cache = tryCreate({ requestTimeoutMs: 2 ** 31, lockTtlMs: 2 ** 31 + 1_000 });
    if (cache instanceof TypeError) {
      expect(cache.message).toMatch(/requestTimeoutMs|lockTtlMs/);
      return;
    }
    await expect(cache.getTokenInfo()).resolves.toMatchObject({ source: 'upstream' });
  });
});

describe('createTokenCache options that are not checked at all', () => {
  it('rejects a renewal scheduler without scheduleRenewal() at creation', () => {
    const result = tryCreate({ renewal: {} as never });
    expect(result).toBeInstanceOf(TypeError);
    expect((result as TypeError).message).toMatch(/options\.renewal/);
  });

  it('rejects a metricsRegistry that is not a prom-client Registry', () => {
    const result = tryCreate({ metricsRegistry: {} as never });
    expect(result).toBeInstanceOf(TypeError);
    expect((result as TypeError).message).toMatch(/options\.metricsRegistry/);
  });

  it('names options.sealingKeys when a sealing key is too short', () => {
    const result = tryCreate({ sealingKeys: [{ id: 'k1', key: new Uint8Array(16) }] });
    expect(result).toBeInstanceOf(TypeError);
    expect((result as TypeError).message).toMatch(/options\.sealingKeys/);
  });

  it('rejects a retry option that is not an object', () => {
    const result = tryCreate({ retry: 5 as never });
    expect(result).toBeInstanceOf(TypeError);
    expect((result as TypeError).message).toMatch(/options\.retry/);
  });
});
