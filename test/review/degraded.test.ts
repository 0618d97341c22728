// Degraded mode (Redis down or frozen): the fleet cooldown still protects the token endpoint, and
// callers get a usable token from memory without waiting on Redis.
import { setTimeout as sleep } from 'node:timers/promises';
import { createTokenCache, type TokenCache, type TokenCacheOptions } from '@tokenfleet/core';
import { type MockOAuthServer, startMockOAuthServer } from '@tokenfleet/mock-oauth';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  mockProvider,
  type SpawnedRedisServerLike,
  settledWithin,
  signalRedis,
  spawnRedisServer,
  uniquePrefix,
} from './review-helpers.js';

let redisServer: SpawnedRedisServerLike;
let server: MockOAuthServer;
const caches: TokenCache[] = [];

beforeEach(async () => {
  redisServer = await spawnRedisServer();
  server = await startMockOAuthServer({ preset: 'staging' });
});

afterEach(async () => {
  signalRedis(redisServer.pid, 'SIGCONT');
  await Promise.all(caches.splice(0).map((cache) => cache.close()));
  await redisServer.stop();
  await server.close();
});

function newCache(overrides: Partial<TokenCacheOptions> = {}): TokenCache {
  const cache = createTokenCache({
    redis: redisServer.url,
    keyPrefix: uniquePrefix('review-degraded'),
    provider: mockProvider(server),
    redisTimeoutMs: 300,
    ...overrides,
  });
  caches.push(cache);
  return cache;
}

async function callTimes(cache: TokenCache, times: number): Promise<unknown[]> {
  const errors: unknown[] = [];
  for (let i = 0; i < times; i += 1) {
    await cache.getToken().catch((error: unknown) => errors.push(error));
  }
  return errors;
}

describe('getToken while Redis is down', () => {
  // The cooldown is only ever kept in Redis (#startCooldown), so with Redis down every call goes
  // through #fetchWithoutRedis and sends one more request to an endpoint that rejects the client.
  it('sends one request to an endpoint that rejects the client, not one per call', async () => {
    const cache = newCache({ provider: mockProvider(server, { clientSecret: 'wrong-secret' }) });
    await redisServer.stop();

    const errors = await callTimes(cache, 5);

    expect(errors).toHaveLength(5);
    expect(errors.map((error) => (error as { code?: string }).code)).toEqual(
      Array(5).fill('TOKENFLEET_INVALID_CLIENT'),
    );
    expect(server.counts().tokenRequests).toBe(1);
  });

  it('honours Retry-After of a 429 instead of asking again on every call', async () => {
    const cache = newCache();
    await redisServer.stop();
    server.setFaults({ rateLimit: { retryAfterSeconds: 60 } });

    const errors = await callTimes(cache, 5);

    expect(errors.map((error) => (error as { code?: string }).code)).toEqual(
      Array(5).fill('TOKENFLEET_RATE_LIMITED'),
    );
    expect(server.counts().tokenRequests).toBe(1);
  });
});

describe('getToken while Redis is frozen and memory holds a usable token', () => {
  // After a failed command #memoryVerified is false, so every call takes #getTokenSlow. Once the
  // 1 s retry interval has passed, each call awaits its own store.read() for redisTimeoutMs
  // before it falls back to the token in memory.
  it('answers from memory without waiting for the frozen Redis', async () => {
    const cache = newCache({ redisTimeoutMs: 8_000 });
    const token = await cache.getToken();
    signalRedis(redisServer.pid, 'SIGSTOP');
    // A 401 for an older token: the compare-and-delete times out and marks Redis as failed.
    await cache.invalidate('an-older-token');
    await sleep(1_100);

    const answer = await settledWithin(cache.getToken(), 2_000);

    expect(answer).toBe(token);
  }, 30_000);
});
