import { randomBytes } from 'node:crypto';
import {
  buildTokenKeys,
  createTokenCache,
  type TokenCache,
  type TokenKeys,
} from '@tokenfleet/core';
import { type MockOAuthServer, startMockOAuthServer } from '@tokenfleet/mock-oauth';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { uniquePrefix } from '../harness/index.js';
import {
  captureLogs,
  LOG_LEVEL,
  mockProvider,
  recordUnhandledRejections,
  sha256,
  within,
} from './helpers.js';

/** Upper bound for a call that must not hang; far above what any step needs. */
const SETTLE_DEADLINE_MS = 10_000;

/** PX of the planted values: long enough to outlive the test, so only the refresh replaces them. */
const PLANTED_PX_MS = 60_000;

const UNREADABLE_LOG = 'stored token record is unreadable, treating it as missing';

let redis: Redis;
let server: MockOAuthServer;
let rejections: ReturnType<typeof recordUnhandledRejections>;
const caches: TokenCache[] = [];

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'));
  server = await startMockOAuthServer({ preset: 'staging' });
});

beforeEach(() => {
  rejections = recordUnhandledRejections();
});

afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => within(cache.close(), 10_000, 'close()')));
  server.clearFaults();
  server.resetCounts();
  rejections.uninstall();
  expect(rejections.reasons).toEqual([]);
});

afterAll(async () => {
  await server.close();
  await redis.quit();
});

function newCache(
  keyPrefix: string,
  overrides: Partial<Parameters<typeof createTokenCache>[0]> = {},
): TokenCache {
  const cache = createTokenCache({
    redis: inject('redisUrl'),
    keyPrefix,
    provider: mockProvider(server),
    ...overrides,
  });
  caches.push(cache);
  return cache;
}

/** Checks that the token key contains a record of `token`, written by `generation`, with a PX. */
async function expectRecordOf(keys: TokenKeys, token: string, generation: number): Promise<void> {
  expect(await redis.type(keys.token)).toBe('string');
  const record = JSON.parse((await redis.get(keys.token))!) as { g: number; h: string };
  expect(record.h).toBe(sha256(token));
  expect(record.g).toBe(generation);
  expect(await redis.pttl(keys.token)).toBeGreaterThan(0);
}

interface PlantCase {
  name: string;
  plant(redis: Redis, key: string): Promise<unknown>;
}

const PLANT_CASES: PlantCase[] = [
  {
    name: 'a random string',
    plant: (client, key) =>
      client.set(key, randomBytes(24).toString('base64'), 'PX', PLANTED_PX_MS),
  },
  {
    name: 'a random string without expiry',
    plant: (client, key) => client.set(key, randomBytes(24).toString('base64')),
  },
  {
    name: 'JSON of the wrong shape',
    plant: (client, key) =>
      client.set(key, JSON.stringify({ token: 'abc', expires: 1 }), 'PX', PLANTED_PX_MS),
  },
  {
    // A generation far above the counter must not let a value that is no record fence out
    // every write.
    name: 'JSON with a high generation and no sealed token',
    plant: (client, key) =>
      client.set(key, JSON.stringify({ v: 1, g: 1_000_000, h: 'x' }), 'PX', PLANTED_PX_MS),
  },
  {
    name: 'a JSON array',
    plant: (client, key) => client.set(key, '[1,2,3]', 'PX', PLANTED_PX_MS),
  },
  {
    name: 'a hash',
    plant: async (client, key) => {
      await client.hset(key, 'access_token', 'not-a-record');
      await client.pexpire(key, PLANTED_PX_MS);
    },
  },
  {
    name: 'a list',
    plant: (client, key) => client.rpush(key, 'a', 'b'),
  },
];

describe('createTokenCache with an unreadable record', () => {
  describe.each(PLANT_CASES)('when the token key holds $name', ({ plant }) => {
    it('refreshes once and replaces the value', async () => {
      const prefix = uniquePrefix('unreadable');
      const pod = newCache(prefix);
      const keys = buildTokenKeys(prefix, pod.id);
      await plant(redis, keys.token);

      const tokens = await within(
        Promise.all(Array.from({ length: 6 }, () => pod.getToken())),
        SETTLE_DEADLINE_MS,
        'getToken() over an unreadable record',
      );

      expect(server.counts().tokenRequests).toBe(1);
      expect(new Set(tokens).size).toBe(1);
      await expectRecordOf(keys, tokens[0]!, 1);
      const reader = newCache(prefix);
      const seen = await reader.getTokenInfo();
      expect(seen.source).toBe('redis');
      expect(seen.token).toBe(tokens[0]);
      expect(server.counts().tokenRequests).toBe(1);
    });
  });

  describe('when the record was sealed with another key', () => {
    it('treats it as missing, refreshes once and replaces it', async () => {
      const prefix = uniquePrefix('unreadable-sealed');
      // Same client id and token URL, so the same token id and keys: only the sealing key differs.
      const sealingPod = newCache(prefix, {
        sealingKeys: [{ id: 'explicit', key: new Uint8Array(randomBytes(32)) }],
      });
      const keys = buildTokenKeys(prefix, sealingPod.id);
      const sealed = await sealingPod.getToken();
      await expectRecordOf(keys, sealed, 1);
      const log = captureLogs();
      const derivingPod = newCache(prefix, { logger: log.logger });

      const tokens = await within(
        Promise.all(Array.from({ length: 6 }, () => derivingPod.getToken())),
        SETTLE_DEADLINE_MS,
        'getToken() over a record sealed with another key',
      );

      expect(derivingPod.id).toBe(sealingPod.id);
      expect(server.counts().tokenRequests).toBe(2);
      expect(new Set(tokens).size).toBe(1);
      expect(tokens[0]).not.toBe(sealed);
      expect(log.messagesAt(LOG_LEVEL.warn)).toContain(UNREADABLE_LOG);
      await expectRecordOf(keys, tokens[0]!, 2);
    });
  });
});
