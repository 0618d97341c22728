import { setTimeout as sleep } from 'node:timers/promises';
import {
  buildTokenKeys,
  createTokenCache,
  type DegradedEvent,
  type TokenCache,
  type TokenCacheOptions,
} from '@tokenfleet/core';
import { type MockOAuthServer, startMockOAuthServer } from '@tokenfleet/mock-oauth';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type SpawnedRedisServer,
  spawnRedisServer,
  uniquePrefix,
  waitFor,
} from '../harness/index.js';
import {
  type CapturedLogger,
  captureLogs,
  LOG_LEVEL,
  mockProvider,
  recordUnhandledRejections,
  within,
} from './helpers.js';

/** Bound of every Redis command in these tests, short so that a dead server is noticed quickly. */
const REDIS_TIMEOUT_MS = 300;

/** Upper bound for a call that must not hang; far above what any step needs. */
const SETTLE_DEADLINE_MS = 10_000;

/** How long the cache serves from memory after a failed Redis command (REDIS_RETRY_INTERVAL_MS). */
const REDIS_RETRY_INTERVAL_MS = 1_000;

const DEGRADED_LOG = 'redis unavailable, serving tokens from this process';

let server: MockOAuthServer;
let redisServer: SpawnedRedisServer | undefined;
let rejections: ReturnType<typeof recordUnhandledRejections>;
const caches: TokenCache[] = [];
const clients: Redis[] = [];

beforeEach(async () => {
  rejections = recordUnhandledRejections();
  server = await startMockOAuthServer({ preset: 'staging' });
});

afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => within(cache.close(), 10_000, 'close()')));
  for (const client of clients.splice(0)) {
    client.disconnect();
  }
  if (redisServer?.pid !== undefined) {
    // A stopped (SIGSTOP) server would sit out stop()'s grace period before its SIGKILL.
    process.kill(redisServer.pid, 'SIGCONT');
  }
  await redisServer?.stop();
  redisServer = undefined;
  await server.close();
  rejections.uninstall();
  expect(rejections.reasons).toEqual([]);
});

function newCache(
  redis: TokenCacheOptions['redis'],
  keyPrefix: string,
  overrides: Partial<TokenCacheOptions> = {},
): TokenCache {
  const cache = createTokenCache({
    redis,
    keyPrefix,
    provider: mockProvider(server),
    redisTimeoutMs: REDIS_TIMEOUT_MS,
    ...overrides,
  });
  caches.push(cache);
  return cache;
}

function recordDegraded(cache: TokenCache): DegradedEvent[] {
  const events: DegradedEvent[] = [];
  cache.on('degraded', (event) => events.push(event));
  return events;
}

describe('createTokenCache with Redis down', () => {
  describe('when no Redis server listens at start', () => {
    it('fetches one token per pod and reports degraded mode', async () => {
      redisServer = await spawnRedisServer();
      const url = redisServer.url;
      await redisServer.stop();
      const prefix = uniquePrefix('redis-down-start');
      const logs: CapturedLogger[] = [captureLogs(), captureLogs()];
      const pods = logs.map((log) => newCache(url, prefix, { logger: log.logger }));
      const degraded = pods.map(recordDegraded);

      const tokens = await within(
        Promise.all(pods.flatMap((pod) => Array.from({ length: 8 }, () => pod.getToken()))),
        SETTLE_DEADLINE_MS,
        'getToken() with Redis down',
      );

      expect(server.counts().tokenRequests).toBe(2);
      expect(new Set(tokens.slice(0, 8)).size).toBe(1);
      expect(new Set(tokens.slice(8)).size).toBe(1);
      for (const [index, log] of logs.entries()) {
        expect(log.messagesAt(LOG_LEVEL.warn)).toContain(DEGRADED_LOG);
        expect(log.messagesAt(LOG_LEVEL.warn)).toContain(
          'token fetched without redis, held in this process only',
        );
        expect(degraded[index]).toHaveLength(1);
        expect(degraded[index]![0]!.cause).toBe('redis');
      }
    });

    it('keeps serving the fetched token after the retry interval', async () => {
      redisServer = await spawnRedisServer();
      const url = redisServer.url;
      await redisServer.stop();
      const pod = newCache(url, uniquePrefix('redis-down-retry'));

      const first = await within(pod.getToken(), SETTLE_DEADLINE_MS, 'first getToken()');
      await sleep(REDIS_RETRY_INTERVAL_MS + 200);
      const second = await within(pod.getTokenInfo(), SETTLE_DEADLINE_MS, 'later getTokenInfo()');

      expect(second.token).toBe(first);
      expect(second.source).toBe('memory');
      expect(second.generation).toBe(0);
      expect(server.counts().tokenRequests).toBe(1);
    });
  });

  describe('when the Redis server accepts connections but never answers', () => {
    it('bounds every command and fetches one token', async () => {
      redisServer = await spawnRedisServer();
      // The caller's own client has no command timeout and queues commands while disconnected:
      // only the cache's redisTimeoutMs bounds them.
      const client = new Redis(redisServer.url);
      client.on('error', () => {});
      clients.push(client);
      await client.ping();
      process.kill(redisServer.pid!, 'SIGSTOP');
      const log = captureLogs();
      const pod = newCache(client, uniquePrefix('redis-frozen-start'), { logger: log.logger });
      const degraded = recordDegraded(pod);

      const tokens = await within(
        Promise.all(Array.from({ length: 8 }, () => pod.getToken())),
        SETTLE_DEADLINE_MS,
        'getToken() with Redis frozen',
      );

      expect(server.counts().tokenRequests).toBe(1);
      expect(new Set(tokens).size).toBe(1);
      expect(degraded).toHaveLength(1);
      expect(log.messagesAt(LOG_LEVEL.warn)).toContain(DEGRADED_LOG);
      await within(pod.close(), SETTLE_DEADLINE_MS, 'close() with Redis frozen');
    });
  });

  describe('when Redis is killed mid-run and restarted', () => {
    it('serves the in-process token during the outage', async () => {
      redisServer = await spawnRedisServer();
      const pod = newCache(redisServer.url, uniquePrefix('redis-killed-serve'));
      const degraded = recordDegraded(pod);
      const token = await pod.getToken();

      await redisServer.kill('SIGKILL');
      const during: string[] = [];
      // Calls spread over more than one retry interval, so some of them ask Redis again.
      for (let round = 0; round < 6; round += 1) {
        during.push(
          ...(await within(
            Promise.all([pod.getToken(), pod.getToken()]),
            SETTLE_DEADLINE_MS,
            `getToken() during the outage, round ${round}`,
          )),
        );
        await sleep(300);
      }

      expect(new Set(during)).toEqual(new Set([token]));
      expect(server.counts().tokenRequests).toBe(1);
      expect(degraded).toHaveLength(1);
    });

    it('keeps the token of a refresh whose write failed', async () => {
      redisServer = await spawnRedisServer();
      const log = captureLogs();
      const pod = newCache(redisServer.url, uniquePrefix('redis-killed-write'), {
        logger: log.logger,
      });
      server.setFaults({ latencyMs: 500, times: 1 });

      const pending = pod.getTokenInfo();
      await waitFor(() => server.counts().tokenRequests === 1, {
        description: 'the token request to arrive',
      });
      await redisServer.kill('SIGKILL');
      const info = await within(pending, SETTLE_DEADLINE_MS, 'getTokenInfo() across the kill');
      const again = await within(pod.getToken(), SETTLE_DEADLINE_MS, 'getToken() after the kill');

      expect(info.source).toBe('upstream');
      expect(info.generation).toBe(0);
      expect(again).toBe(info.token);
      expect(server.counts().tokenRequests).toBe(1);
      expect(log.messagesAt(LOG_LEVEL.warn)).toContain(DEGRADED_LOG);
    });

    it('writes the next refresh to Redis again for other pods', async () => {
      redisServer = await spawnRedisServer();
      const prefix = uniquePrefix('redis-killed-restart');
      const pod = newCache(redisServer.url, prefix);
      const keys = buildTokenKeys(prefix, pod.id);
      const before = await pod.getToken();

      await redisServer.kill('SIGKILL');
      expect(await within(pod.getToken(), SETTLE_DEADLINE_MS, 'getToken() during the outage')).toBe(
        before,
      );
      await redisServer.restart();
      const client = new Redis(redisServer.url);
      clients.push(client);
      // The pod's command and subscriber connections reconnect with a back-off of their own. A
      // refresh sent before they are back would time out, so its token would stay in memory.
      await waitFor(
        async () =>
          String(await client.client('LIST'))
            .trim()
            .split('\n').length >= 3,
        {
          description: 'the pod to reconnect',
        },
      );
      const refreshed = await within(pod.refresh(), SETTLE_DEADLINE_MS, 'refresh() after restart');

      expect(refreshed.token).not.toBe(before);
      expect(refreshed.source).toBe('upstream');
      expect(await client.exists(keys.token)).toBe(1);
      const otherPod = newCache(redisServer.url, prefix);
      const seen = await within(otherPod.getTokenInfo(), SETTLE_DEADLINE_MS, 'other pod read');
      expect(seen.token).toBe(refreshed.token);
      expect(seen.source).toBe('redis');
      expect(server.counts().tokenRequests).toBe(2);
    });
  });
});
