// Token reuse (Doorkeeper's reuse_access_token), which Quiqup's server may have on. Doorkeeper
// rounds expires_in to the nearest second, so a token that comes back unchanged keeps a margin of
// min(skewMs, 1 s) and is never handed out after the upstream considers it expired.
import { setTimeout as sleep } from 'node:timers/promises';
import { createTokenCache, type TokenCache } from '@tokenfleet/core';
import { type MockOAuthServer, startMockOAuthServer } from '@tokenfleet/mock-oauth';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  mockProvider,
  type SpawnedRedisServerLike,
  spawnRedisServer,
  uniquePrefix,
} from './review-helpers.js';

let redisServer: SpawnedRedisServerLike;
let server: MockOAuthServer;
const caches: TokenCache[] = [];

beforeAll(async () => {
  redisServer = await spawnRedisServer();
  server = await startMockOAuthServer({ preset: 'staging' });
});

afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => cache.close()));
  server.clearFaults();
  server.resetCounts();
});

afterAll(async () => {
  await server.close();
  await redisServer.stop();
});

/** A fetch that rounds `expires_in` to whole seconds the way Doorkeeper does (`round(0)`). */
const doorkeeperRounding: typeof fetch = async (input, init) => {
  const response = await fetch(input, init);
  const text = await response.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return new Response(text, { status: response.status, headers: response.headers });
  }
  if (typeof body.expires_in === 'number') {
    body.expires_in = Math.round(body.expires_in);
  }
  return new Response(JSON.stringify(body), {
    status: response.status,
    headers: { 'content-type': 'application/json' },
  });
};

function newCache(fetchImpl?: typeof fetch): TokenCache {
  const cache = createTokenCache({
    redis: redisServer.url,
    keyPrefix: uniquePrefix('review-reuse'),
    provider: mockProvider(server, fetchImpl ? { fetch: fetchImpl } : {}),
    skewMs: 500,
    refreshAheadMs: 1_500,
  });
  caches.push(cache);
  return cache;
}

/** Calls getToken() every 20 ms for `ms`, recording expired tokens handed out and errors. */
async function callFor(cache: TokenCache, ms: number) {
  const expired: number[] = [];
  const errors: string[] = [];
  const startedAt = performance.now();
  while (performance.now() - startedAt < ms) {
    try {
      const token = await cache.getToken();
      if (!server.isTokenActive(token)) {
        expired.push(Math.round(performance.now() - startedAt));
      }
    } catch (error) {
      errors.push((error as { code?: string }).code ?? String(error));
    }
    await sleep(20);
  }
  return { expired, errors };
}

describe('an endpoint that reuses tokens', () => {
  it('never hands out a reused token after the endpoint considers it expired', async () => {
    // A fractional lifetime makes the mock count down in milliseconds; the fetch rounds them.
    server.setExpiresIn(2.4);
    const cache = newCache(doorkeeperRounding);
    await cache.getToken();
    server.setFaults({ reuseToken: true });

    const { expired } = await callFor(cache, 3_500);

    expect(expired).toEqual([]);
  }, 20_000);
});
