import {
  buildTokenKeys,
  createTokenCache,
  type TokenCache,
  type TokenCacheOptions,
} from '@tokenfleet/core';
import { type MockOAuthServer, startMockOAuthServer } from '@tokenfleet/mock-oauth';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import {
  killAll,
  type SpawnedRedisServer,
  spawnRedisServer,
  startWorker,
  uniquePrefix,
  waitFor,
} from '../harness/index.js';
import {
  captureLogs,
  LOG_LEVEL,
  mockProvider,
  processState,
  recordUnhandledRejections,
  sha256,
  within,
} from './helpers.js';
import {
  type LockHolderResult,
  STOPPING_LINE,
  TOKEN_REQUEST_LINE,
} from './lock-holder-contract.js';

/** Lock TTL of every pod here, scaled down from the default 30 s. */
const LOCK_TTL_MS = 3_000;

/** Token request timeout, the longest that LOCK_TTL_MS allows (it must be 1 s shorter). */
const REQUEST_TIMEOUT_MS = 2_000;

/**
 * Upper bound for a call that waits out a dead holder's lock: the lock TTL, 1 s for the refresh,
 * and a wide margin so that a slow machine does not fail the test. It catches a hang, nothing more.
 */
const LOCK_WAIT_DEADLINE_MS = LOCK_TTL_MS + 1_000 + 6_000;

/** Upper bound for a call that must not hang; far above what any step needs. */
const SETTLE_DEADLINE_MS = 10_000;

const WORKER_SCRIPT = new URL('./lock-holder-worker.ts', import.meta.url);

const RELEASE_FAILED_LOG = 'lock release failed';

let redis: Redis;
let server: MockOAuthServer;
let redisServer: SpawnedRedisServer | undefined;
let rejections: ReturnType<typeof recordUnhandledRejections>;
const caches: TokenCache[] = [];
const clients: Redis[] = [];

beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
});

beforeEach(async () => {
  rejections = recordUnhandledRejections();
  // A server per test: a delayed response of one test must not reach the counters of the next.
  server = await startMockOAuthServer({ preset: 'staging' });
});

afterEach(async () => {
  await killAll();
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

afterAll(async () => {
  await redis.quit();
});

function newCache(keyPrefix: string, overrides: Partial<TokenCacheOptions> = {}): TokenCache {
  const cache = createTokenCache({
    redis: inject('redisUrl'),
    keyPrefix,
    provider: mockProvider(server),
    lockTtlMs: LOCK_TTL_MS,
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    ...overrides,
  });
  caches.push(cache);
  return cache;
}

function startLockHolder(mode: 'hold' | 'stop-after-grant', keyPrefix: string) {
  return startWorker<LockHolderResult>({
    script: WORKER_SCRIPT,
    args: [mode],
    env: {
      FAULT_REDIS_URL: inject('redisUrl'),
      FAULT_TOKEN_BASE_URL: server.url,
      FAULT_KEY_PREFIX: keyPrefix,
      FAULT_LOCK_TTL_MS: String(LOCK_TTL_MS),
      FAULT_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
    },
  });
}

/** Reads the generation and token hash of the stored record. */
async function storedRecord(key: string): Promise<{ g: number; h: string }> {
  const value = await redis.get(key);
  expect(value).not.toBeNull();
  return JSON.parse(value!) as { g: number; h: string };
}

describe('fleet lock faults', () => {
  describe('when the lock holder is killed during its token request', () => {
    it('lets another pod refresh once the lock TTL has passed', async () => {
      const prefix = uniquePrefix('lock-holder-killed');
      // Only the holder's request is delayed, and every later request gets its response at once.
      server.setFaults({ latencyMs: 20_000, times: 1 });
      const holder = startLockHolder('hold', prefix);
      await holder.waitForOutput(TOKEN_REQUEST_LINE);
      await waitFor(() => server.counts().tokenRequests === 1, {
        description: 'the holder request to arrive',
      });
      const pods = [newCache(prefix), newCache(prefix)];
      const keys = buildTokenKeys(prefix, pods[0]!.id);
      expect(await redis.pttl(keys.lock)).toBeGreaterThan(0);

      const exit = await holder.kill('SIGKILL');
      const tokens = await within(
        Promise.all(pods.flatMap((pod) => Array.from({ length: 4 }, () => pod.getToken()))),
        LOCK_WAIT_DEADLINE_MS,
        'getToken() behind a dead lock holder',
      );

      expect(exit.signal).toBe('SIGKILL');
      expect(new Set(tokens).size).toBe(1);
      expect(server.counts().tokenRequests).toBe(2);
      // The holder's response is still delayed, so the one issued token is the second request's.
      const issued = server.issuedTokens();
      expect(issued).toHaveLength(1);
      expect(issued[0]!.tokenHash).toBe(sha256(tokens[0]!));
      const record = await storedRecord(keys.token);
      expect(record.g).toBe(2);
      expect(record.h).toBe(sha256(tokens[0]!));
    });
  });

  describe('when the lock holder is frozen past the lock TTL', () => {
    it('rejects its late write and keeps the newer token', async () => {
      const prefix = uniquePrefix('lock-holder-frozen');
      const holder = startLockHolder('stop-after-grant', prefix);
      await holder.waitForOutput(STOPPING_LINE);
      await waitFor(() => processState(holder.pid) === 'T', {
        description: 'the holder to stop',
      });
      const pod = newCache(prefix);
      const keys = buildTokenKeys(prefix, pod.id);
      await waitFor(async () => (await redis.pttl(keys.lock)) === -2, {
        timeoutMs: LOCK_WAIT_DEADLINE_MS,
        description: "the frozen holder's lock to expire",
      });

      const newer = await within(pod.getTokenInfo(), SETTLE_DEADLINE_MS, 'getTokenInfo()');
      process.kill(holder.pid, 'SIGCONT');
      const result = await within(holder.result, SETTLE_DEADLINE_MS, "the holder's result");

      expect(newer.source).toBe('upstream');
      expect(newer.generation).toBe(2);
      expect(server.counts().tokenRequests).toBe(2);
      expect(result.writeFenced).toBe(true);
      expect(result.localRefreshes).toBe(0);
      expect(result.generation).toBe(2);
      expect(result.tokenHash).toBe(sha256(newer.token));
      const record = await storedRecord(keys.token);
      expect(record.g).toBe(2);
      expect(record.h).toBe(sha256(newer.token));
      expect(await redis.get(keys.generation)).toBe('2');
    });

    it('serves the newer token when its own request timed out', async () => {
      const prefix = uniquePrefix('lock-holder-frozen-request');
      // The response arrives while the holder is stopped. Once it runs again, its request
      // timeout has passed as well, and that timer fires before the socket is read.
      server.setFaults({ latencyMs: 1_000, times: 1 });
      const holder = startLockHolder('hold', prefix);
      await holder.waitForOutput(TOKEN_REQUEST_LINE);
      await waitFor(() => server.counts().tokenRequests === 1, {
        description: 'the holder request to arrive',
      });
      process.kill(holder.pid, 'SIGSTOP');
      const pod = newCache(prefix);
      const keys = buildTokenKeys(prefix, pod.id);
      await waitFor(async () => (await redis.pttl(keys.lock)) === -2, {
        timeoutMs: LOCK_WAIT_DEADLINE_MS,
        description: "the frozen holder's lock to expire",
      });

      const newer = await within(pod.getTokenInfo(), SETTLE_DEADLINE_MS, 'getTokenInfo()');
      process.kill(holder.pid, 'SIGCONT');
      const result = await within(holder.result, SETTLE_DEADLINE_MS, "the holder's result");

      expect(newer.generation).toBe(2);
      expect(server.counts().tokenRequests).toBe(2);
      expect(result.localRefreshes).toBe(0);
      expect(result.generation).toBe(2);
      expect(result.tokenHash).toBe(sha256(newer.token));
      const record = await storedRecord(keys.token);
      expect(record.g).toBe(2);
      expect(record.h).toBe(sha256(newer.token));
    });
  });

  describe.each([
    {
      name: 'deleted',
      tamper: (lockKey: string) => redis.del(lockKey),
      lockAfter: null,
    },
    {
      name: 'taken over by another value',
      tamper: (lockKey: string) => redis.set(lockKey, 'another-holder', 'PX', 10_000),
      lockAfter: 'another-holder',
    },
    {
      name: 'expired',
      tamper: (lockKey: string) => redis.pexpire(lockKey, 1),
      lockAfter: null,
    },
  ])('when the lock is $name during the refresh', ({ tamper, lockAfter }) => {
    it('returns the token and logs the failed release', async () => {
      const prefix = uniquePrefix('lock-release');
      const log = captureLogs();
      const pod = newCache(prefix, { logger: log.logger });
      const keys = buildTokenKeys(prefix, pod.id);
      server.setFaults({ latencyMs: 300, times: 1 });

      const pending = pod.getToken();
      await waitFor(() => server.counts().tokenRequests === 1, {
        description: 'the token request to arrive',
      });
      await tamper(keys.lock);
      const token = await within(pending, SETTLE_DEADLINE_MS, 'getToken() with a lost lock');

      expect((await storedRecord(keys.token)).h).toBe(sha256(token));
      await waitFor(() => log.messagesAt(LOG_LEVEL.debug).includes(RELEASE_FAILED_LOG), {
        description: 'the failed release to be logged',
      });
      expect(await redis.get(keys.lock)).toBe(lockAfter);
      expect(await pod.getToken()).toBe(token);
      expect(server.counts().tokenRequests).toBe(1);
    });
  });

  describe('when Redis stops answering before the lock is released', () => {
    it('returns the token and gives up the release after redisTimeoutMs', async () => {
      redisServer = await spawnRedisServer();
      // The caller's own client has no command timeout: only the cache bounds the release.
      const client = new Redis(redisServer.url);
      client.on('error', () => {});
      clients.push(client);
      const log = captureLogs();
      const pod = newCache(uniquePrefix('lock-release-frozen'), {
        redis: client,
        redisTimeoutMs: 300,
        logger: log.logger,
      });
      const redisPid = redisServer.pid!;
      // `refreshed` is emitted after the write and before the release.
      pod.once('refreshed', () => process.kill(redisPid, 'SIGSTOP'));

      const info = await within(pod.getTokenInfo(), SETTLE_DEADLINE_MS, 'getTokenInfo()');

      expect(info.source).toBe('upstream');
      // The kernel marks a stopped process a moment after the signal.
      await waitFor(() => processState(redisPid) === 'T', { description: 'redis-server to stop' });
      await waitFor(() => log.messagesAt(LOG_LEVEL.debug).includes(RELEASE_FAILED_LOG), {
        description: 'the release to time out',
      });
      expect(await within(pod.getToken(), SETTLE_DEADLINE_MS, 'getToken()')).toBe(info.token);
      expect(server.counts().tokenRequests).toBe(1);
    });
  });
});
