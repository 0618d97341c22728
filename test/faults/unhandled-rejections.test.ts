import { setTimeout as sleep } from 'node:timers/promises';
import {
  createTokenCache,
  type TokenCache,
  TokenCacheClosedError,
  type TokenCacheOptions,
} from '@tokenfleet/core';
import { type MockOAuthServer, startMockOAuthServer } from '@tokenfleet/mock-oauth';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type SpawnedRedisServer,
  spawnRedisServer,
  uniquePrefix,
  waitFor,
} from '../harness/index.js';
import {
  captureLogs,
  LOG_LEVEL,
  mockProvider,
  recordUnhandledRejections,
  within,
} from './helpers.js';

/** Upper bound for a call that must not hang; far above what any step needs. */
const SETTLE_DEADLINE_MS = 10_000;

/**
 * How long the test lingers after the last call: background work that fails later (a release,
 * a resubscribe, a retry timer) has to fail inside the test to be caught there.
 */
const LINGER_MS = 1_500;

let server: MockOAuthServer;
let redisServer: SpawnedRedisServer;
let rejections: ReturnType<typeof recordUnhandledRejections>;
const caches: TokenCache[] = [];

beforeEach(async () => {
  rejections = recordUnhandledRejections();
  server = await startMockOAuthServer({ preset: 'staging' });
  redisServer = await spawnRedisServer();
});

afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => within(cache.close(), 10_000, 'close()')));
  await redisServer.stop();
  await server.close();
  rejections.uninstall();
});

function newCache(overrides: Partial<TokenCacheOptions> = {}): TokenCache {
  const cache = createTokenCache({
    redis: redisServer.url,
    keyPrefix: uniquePrefix('unhandled'),
    provider: mockProvider(server),
    redisTimeoutMs: 300,
    ...overrides,
  });
  caches.push(cache);
  return cache;
}

describe('token cache background work under faults', () => {
  describe('when a background refresh fails and Redis dies meanwhile', () => {
    it('leaves no unhandled rejection', async () => {
      // A 3 s token with no skew and the largest margin: pods start refreshing ahead after
      // about a second and a half.
      server.setExpiresIn(3);
      const log = captureLogs();
      const pod = newCache({
        skewMs: 0,
        refreshAheadMs: (lifetimeMs) => lifetimeMs,
        retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 10 },
        logger: log.logger,
      });
      const token = await pod.getToken();
      server.setFaults({ status: 503 });

      await waitFor(
        async () => {
          expect(await pod.getToken()).toBe(token);
          return log
            .messagesAt(LOG_LEVEL.warn)
            .includes('background refresh failed, serving the current token');
        },
        { timeoutMs: SETTLE_DEADLINE_MS, description: 'a failed background refresh' },
      );
      await redisServer.kill('SIGKILL');
      for (let call = 0; call < 5; call += 1) {
        await within(pod.getToken(), SETTLE_DEADLINE_MS, 'getToken() with Redis dead').catch(
          () => {},
        );
        await sleep(200);
      }
      await sleep(LINGER_MS);

      expect(rejections.reasons).toEqual([]);
    });
  });

  describe('when the cache closes during a refresh while Redis is dead', () => {
    it('rejects the waiting call as closed, with no unhandled rejection', async () => {
      const pod = newCache();
      server.setFaults({ latencyMs: 5_000, times: 1 });

      // The handler is attached at once: the call rejects while the test awaits close().
      const outcome = pod.getToken().then(
        () => 'resolved',
        (error: unknown) => error,
      );
      await waitFor(() => server.counts().tokenRequests === 1, {
        description: 'the token request to arrive',
      });
      await redisServer.kill('SIGKILL');
      await within(pod.close(), SETTLE_DEADLINE_MS, 'close() during a refresh');
      const error = await within(outcome, SETTLE_DEADLINE_MS, 'the waiting getToken()');
      await sleep(LINGER_MS);

      expect(error).toBeInstanceOf(TokenCacheClosedError);
      expect((error as TokenCacheClosedError).code).toBe('TOKENFLEET_CLOSED');
      expect(rejections.reasons).toEqual([]);
    });
  });
});
