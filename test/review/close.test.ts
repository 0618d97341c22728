// close() in each phase of a refresh: it must settle, reject the waiting callers as closed, leave
// no unhandled rejection and no handle behind.
import { setTimeout as sleep } from 'node:timers/promises';
import { createTokenCache, type TokenCache, type TokenCacheOptions } from '@tokenfleet/core';
import { type MockOAuthServer, startMockOAuthServer } from '@tokenfleet/mock-oauth';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
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
let rejections: unknown[] = [];
const onRejection = (reason: unknown) => rejections.push(reason);

beforeAll(async () => {
  redisServer = await spawnRedisServer();
  server = await startMockOAuthServer({ preset: 'staging' });
  process.on('unhandledRejection', onRejection);
});

afterEach(() => {
  signalRedis(redisServer.pid, 'SIGCONT');
  server.clearFaults();
  server.resetCounts();
});

afterAll(async () => {
  process.off('unhandledRejection', onRejection);
  await server.close();
  await redisServer.stop();
});

/** Handle types open now, counted, such as `{ TCPWRAP: 3, Timeout: 1 }`. */
function handles(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) {
    counts[type] = (counts[type] ?? 0) + 1;
  }
  return counts;
}

function newCache(prefix: string, overrides: Partial<TokenCacheOptions> = {}): TokenCache {
  return createTokenCache({
    redis: redisServer.url,
    keyPrefix: prefix,
    provider: mockProvider(server),
    redisTimeoutMs: 500,
    ...overrides,
  });
}

/** Runs `phase`, closes the cache, and returns what was left behind. */
async function closeDuring(
  setup: (prefix: string) => Promise<{ cache: TokenCache; pending: Promise<unknown>[] }>,
) {
  rejections = [];
  await sleep(50);
  const before = handles();
  const { cache, pending: calls } = await setup(uniquePrefix('review-close'));
  // Handlers go on at once: a rejection seen only after close() would count as unhandled.
  const pending = calls.map((call) =>
    call.then(
      () => 'resolved',
      (error: { code?: string }) => error.code ?? String(error),
    ),
  );
  const closed = await settledWithin(
    cache.close().then(() => 'closed'),
    10_000,
  );
  const outcomes = await Promise.all(pending.map((outcome) => settledWithin(outcome, 5_000)));
  signalRedis(redisServer.pid, 'SIGCONT');
  // fetch's keep-alive socket to the mock token endpoint lingers for undici's 4 s idle timeout.
  await sleep(4_500);
  const after = handles();
  const leaked = Object.entries(after)
    .filter(([type, count]) => count > (before[type] ?? 0))
    .map(([type, count]) => `${type}+${count - (before[type] ?? 0)}`);
  return { closed, outcomes, leaked, rejections: [...rejections] };
}

describe('close()', () => {
  it('while idle after a refresh', async () => {
    const result = await closeDuring(async (prefix) => {
      const cache = newCache(prefix);
      await cache.getToken();
      return { cache, pending: [] };
    });
    expect(result).toEqual({ closed: 'closed', outcomes: [], leaked: [], rejections: [] });
  });

  it('during a token request that never answers', async () => {
    const result = await closeDuring(async (prefix) => {
      server.setFaults({ noAnswer: true });
      const cache = newCache(prefix);
      const pending = [cache.getToken(), cache.getToken()];
      await sleep(200);
      return { cache, pending };
    });
    expect(result).toEqual({
      closed: 'closed',
      outcomes: ['TOKENFLEET_CLOSED', 'TOKENFLEET_CLOSED'],
      leaked: [],
      rejections: [],
    });
  });

  it('while waiting for another pod that holds the lock', async () => {
    const result = await closeDuring(async (prefix) => {
      server.setFaults({ noAnswer: true });
      const holder = newCache(prefix);
      const holding = holder.getToken().catch(() => undefined);
      await sleep(200);
      const waiter = newCache(prefix);
      const pending = [waiter.getToken()];
      await sleep(200);
      // The holder is closed too, after the waiter, so only the waiter's close is measured.
      void sleep(100).then(() => holder.close().then(() => holding));
      return { cache: waiter, pending };
    });
    await sleep(500);
    expect(result).toEqual({
      closed: 'closed',
      outcomes: ['TOKENFLEET_CLOSED'],
      leaked: [],
      rejections: [],
    });
  });

  it('during a retry back-off after a 503', async () => {
    const result = await closeDuring(async (prefix) => {
      server.setFaults({ status: 503 });
      const cache = newCache(prefix, { retry: { attempts: 5, baseDelayMs: 3_000 } });
      const pending = [cache.getToken()];
      await sleep(300);
      return { cache, pending };
    });
    expect(result.closed).toBe('closed');
    expect(result.rejections).toEqual([]);
    expect(result.leaked).toEqual([]);
  });

  it('while Redis is frozen, with a URL connection the cache owns', async () => {
    const result = await closeDuring(async (prefix) => {
      const cache = newCache(prefix);
      await cache.getToken();
      signalRedis(redisServer.pid, 'SIGSTOP');
      const pending = [cache.refresh()];
      await sleep(100);
      return { cache, pending };
    });
    expect(result.closed).toBe('closed');
    expect(result.rejections).toEqual([]);
    expect(result.leaked).toEqual([]);
  }, 30_000);

  it('with a client the caller owns, which stays open', async () => {
    const client = new Redis(redisServer.url);
    const result = await closeDuring(async (prefix) => {
      const cache = newCache(prefix, { redis: client });
      await cache.getToken();
      return { cache, pending: [] };
    });
    expect(client.status).toBe('ready');
    await client.quit();
    expect(result).toMatchObject({ closed: 'closed', rejections: [] });
  });
});
