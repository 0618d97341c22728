// A renewal queue whose Redis stops responding must not hold getToken()/refresh() or close():
// adding the renewal job is bounded by redisTimeoutMs. The queue runs on its own redis-server here
// so that it can be frozen right after the cache's write.
import { createTokenCache, type TokenCache } from '@tokenfleet/core';
import { type MockOAuthServer, startMockOAuthServer } from '@tokenfleet/mock-oauth';
import { createRenewalQueue, type RenewalQueue } from '@tokenfleet/refresher';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  mockProvider,
  type SpawnedRedisServerLike,
  settledWithin,
  signalRedis,
  spawnRedisServer,
  uniquePrefix,
} from './review-helpers.js';

let cacheRedis: SpawnedRedisServerLike;
let queueRedis: SpawnedRedisServerLike;
let server: MockOAuthServer;
let queue: RenewalQueue;
let cache: TokenCache;

beforeEach(async () => {
  cacheRedis = await spawnRedisServer();
  queueRedis = await spawnRedisServer();
  server = await startMockOAuthServer({ preset: 'staging' });
  queue = createRenewalQueue({
    connection: queueRedis.url,
    queueName: `review-q-${process.pid}-${Date.now()}`,
  });
  cache = createTokenCache({
    redis: cacheRedis.url,
    keyPrefix: uniquePrefix('review-renewal-hang'),
    provider: mockProvider(server),
    renewal: queue,
    redisTimeoutMs: 1_000,
  });
  // The first refresh adds its job while the queue's Redis still responds.
  await cache.getToken();
});

afterEach(async () => {
  signalRedis(queueRedis.pid, 'SIGCONT');
  await cache.close();
  await queue.close();
  await Promise.all([cacheRedis.stop(), queueRedis.stop()]);
  await server.close();
});

describe('a refresh while the renewal queue hangs', () => {
  it('returns the new token within a few redisTimeoutMs', async () => {
    signalRedis(queueRedis.pid, 'SIGSTOP');

    const refreshed = await settledWithin(cache.refresh(), 8_000);

    expect(refreshed).not.toBe('pending');
    expect(server.counts().tokenRequests).toBe(2);
  }, 30_000);

  it('lets close() finish', async () => {
    signalRedis(queueRedis.pid, 'SIGSTOP');
    const refreshing = cache.refresh().catch(() => undefined);

    await settledWithin(refreshing, 1_000);
    const closed = await settledWithin(
      cache.close().then(() => 'closed'),
      8_000,
    );

    expect(closed).toBe('closed');
  }, 30_000);
});
