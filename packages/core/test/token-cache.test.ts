import { randomUUID } from 'node:crypto';
import { type MockOAuthServer, startMockOAuthServer } from '@tokenfleet/mock-oauth';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createAuthorizedFetch, createTokenCache, quiqup, type TokenCache } from '../src/index.js';

const redisUrl = process.env.TOKENFLEET_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

let redis: Redis;
let server: MockOAuthServer;
const caches: TokenCache[] = [];

function newCache(
  keyPrefix: string,
  overrides: Partial<Parameters<typeof createTokenCache>[0]> = {},
) {
  const cache = createTokenCache({
    redis,
    keyPrefix,
    provider: quiqup({
      environment: 'staging',
      baseUrl: server.url,
      clientId: 'demo-client',
      clientSecret: 'demo-secret',
    }),
    ...overrides,
  });
  caches.push(cache);
  return cache;
}

function uniquePrefix(): string {
  return `tf-test-${randomUUID().slice(0, 8)}`;
}

beforeAll(async () => {
  redis = new Redis(redisUrl);
  server = await startMockOAuthServer({ preset: 'staging' });
});

afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => cache.close()));
  server.clearFaults();
  server.resetCounts();
});

afterAll(async () => {
  await server.close();
  await redis.quit();
});

describe('createTokenCache', () => {
  describe('when many callers start cold', () => {
    it('sends one token request and hands out one token', async () => {
      const prefix = uniquePrefix();
      const fleet = [newCache(prefix), newCache(prefix), newCache(prefix), newCache(prefix)];

      const tokens = await Promise.all(
        fleet.flatMap((cache) => Array.from({ length: 50 }, () => cache.getToken())),
      );

      expect(server.counts().tokenRequests).toBe(1);
      expect(new Set(tokens).size).toBe(1);
    });
  });

  describe('when a staging token is stored', () => {
    it('sets a PTTL just below 3600 s minus skewMs', async () => {
      const prefix = uniquePrefix();
      const cache = newCache(prefix);

      const info = await cache.getTokenInfo();
      const pttl = await redis.pttl(`${prefix}:{${cache.id}}:token`);

      expect(info.source).toBe('upstream');
      expect(pttl).toBeLessThanOrEqual(3_600_000 - 60_000);
      expect(pttl).toBeGreaterThan(3_600_000 - 60_000 - 1_000);
    });
  });

  describe('when the resource answers 401 once', () => {
    it('invalidates that token, fetches one more and retries', async () => {
      const prefix = uniquePrefix();
      const cache = newCache(prefix);
      const authorizedFetch = createAuthorizedFetch(cache);
      const first = await cache.getToken();
      server.revokeToken(first);
      server.resetCounts();

      const response = await authorizedFetch(server.resourceUrl);
      const second = await cache.getToken();

      expect(response.status).toBe(200);
      expect(server.counts().tokenRequests).toBe(1);
      expect(server.counts().resourceRequests).toBe(2);
      expect(server.counts().resourceUnauthorized).toBe(1);
      expect(second).not.toBe(first);
    });
  });

  describe('when an old token is invalidated', () => {
    it('keeps the newer token in Redis', async () => {
      const prefix = uniquePrefix();
      const cache = newCache(prefix);
      const oldToken = await cache.getToken();
      const newer = await cache.refresh();

      const deleted = await cache.invalidate(oldToken);

      expect(deleted).toBe(false);
      expect(newer.token).not.toBe(oldToken);
      expect(await newCache(prefix).getToken()).toBe(newer.token);
    });
  });
});
