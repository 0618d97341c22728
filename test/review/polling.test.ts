// Redis commands per second while pods wait, counted with INFO commandstats on a private server.
import { setTimeout as sleep } from 'node:timers/promises';
import { createTokenCache, type TokenCache } from '@tokenfleet/core';
import { type MockOAuthServer, startMockOAuthServer } from '@tokenfleet/mock-oauth';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
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
const caches: TokenCache[] = [];

beforeAll(async () => {
  redisServer = await spawnRedisServer();
  redis = new Redis(redisServer.url);
  server = await startMockOAuthServer({ preset: 'staging' });
});

afterEach(async () => {
  server.clearFaults();
  await Promise.all(caches.splice(0).map((cache) => cache.close()));
});

afterAll(async () => {
  redis.disconnect();
  await server.close();
  await redisServer.stop();
});

describe('pods waiting for a lock holder whose token request hangs', () => {
  it('send a handful of Redis commands per pod per second, and one token request', async () => {
    const prefix = uniquePrefix('review-polling');
    server.setFaults({ latencyMs: 6_000, times: 1 });
    const options = { redis: redisServer.url, keyPrefix: prefix, provider: mockProvider(server) };
    const holder = createTokenCache(options);
    caches.push(holder);
    const holding = holder.getToken();
    await sleep(200);
    const waiters = Array.from({ length: 5 }, () => createTokenCache(options));
    caches.push(...waiters);
    const waiting = waiters.flatMap((pod) => Array.from({ length: 20 }, () => pod.getToken()));
    await sleep(500);

    const before = await commandCounts(redis);
    await sleep(4_000);
    const after = await commandCounts(redis);
    const tokens = new Set(await Promise.all([holding, ...waiting]));

    expect(tokens.size).toBe(1);
    expect(server.counts().tokenRequests).toBe(1);
    // commandstats counts the commands inside scripts too: one poll (lock attempt, lock PTTL,
    // two reads) is ~15, and each pod polls every 2 s: 5 pods x 2 polls x 15 = 150.
    expect(commandsBetween(before, after)).toBeLessThanOrEqual(200);
  }, 30_000);
});
