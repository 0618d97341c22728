// A failed background refresh backs off by at least 1 s, and never before a fleet cooldown ends,
// even with retry.maxDelayMs 0: a refresh ahead must not turn into a polling loop on Redis.
import { setTimeout as sleep } from 'node:timers/promises';
import { createTokenCache, type TokenCache } from '@tokenfleet/core';
import { type MockOAuthServer, startMockOAuthServer } from '@tokenfleet/mock-oauth';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  commandCounts,
  commandsBetween,
  mockProvider,
  type SpawnedRedisServerLike,
  spawnRedisServer,
  uniquePrefix,
} from './review-helpers.js';

let redisServer: SpawnedRedisServerLike;
let redis: Redis;
let server: MockOAuthServer;
let cache: TokenCache;

beforeAll(async () => {
  redisServer = await spawnRedisServer();
  redis = new Redis(redisServer.url);
  server = await startMockOAuthServer({ expiresIn: 4 });
});

afterAll(async () => {
  await cache?.close();
  redis.disconnect();
  await redisServer.stop();
  await server.close();
});

/** Calls getToken() on every turn of the event loop for `ms` milliseconds. */
async function callContinuously(target: TokenCache, ms: number): Promise<number> {
  const end = performance.now() + ms;
  let calls = 0;
  while (performance.now() < end) {
    await target.getToken();
    calls += 1;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return calls;
}

describe('refresh ahead during a fleet cooldown with retry.maxDelayMs 0', () => {
  it('polls Redis at most a few times a second', async () => {
    cache = createTokenCache({
      redis: redisServer.url,
      keyPrefix: uniquePrefix('review-bg-poll'),
      provider: mockProvider(server),
      skewMs: 0,
      // Stored life ~4000 ms; pods step in at half the margin: ~2.2 s after the fetch.
      refreshAheadMs: 3_600,
      retry: { attempts: 1, baseDelayMs: 0, maxDelayMs: 0 },
    });
    await cache.getToken();
    server.setFaults({ rateLimit: { retryAfterSeconds: 60 } });
    await sleep(2_300);
    // The first background refresh gets the 429 and sets the fleet cooldown.
    await cache.getToken();
    await sleep(100);

    const before = await commandCounts(redis);
    const calls = await callContinuously(cache, 1_000);
    const after = await commandCounts(redis);

    expect(calls).toBeGreaterThan(100);
    expect(server.counts().tokenRequests).toBe(2);
    expect(commandsBetween(before, after)).toBeLessThanOrEqual(20);
  }, 20_000);
});
