// invalidate() and pub/sub races.
import { setTimeout as sleep } from 'node:timers/promises';
import { createTokenCache, type TokenCache, type TokenCacheOptions } from '@tokenfleet/core';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { mockProvider, uniquePrefix, useReviewEnvironment } from './review-helpers.js';

const env = useReviewEnvironment();

function newCache(prefix: string, overrides: Partial<TokenCacheOptions> = {}): TokenCache {
  const cache = createTokenCache({
    redis: env.redisServer.url,
    keyPrefix: prefix,
    provider: mockProvider(env.server),
    ...overrides,
  });
  env.track(cache);
  return cache;
}

describe('a read that started before an invalidation and is answered after its message', () => {
  // #getTokenSlow remembers whatever its read returned. The pod's command connection (often the
  // application's own client) can deliver that reply after the subscriber connection delivered
  // the `invalidated` message, for example behind a large reply to the application. The pod then
  // keeps the revoked token in verified memory and serves it with no I/O until its deadline.
  it('does not keep serving the invalidated token', async () => {
    const prefix = uniquePrefix('review-invalidate-race');
    const shared = new Redis(env.redisServer.url);
    const pod = newCache(prefix, { redis: shared });
    const other = newCache(prefix);
    const revoked = await other.getToken();
    await env.redis.set(`${prefix}:big`, 'x'.repeat(64 * 1024 * 1024));
    await sleep(100);

    // The application reads a large value on the shared client; the pod's read queues behind it.
    const big = shared.getBuffer(`${prefix}:big`);
    const first = pod.getToken();
    await sleep(5);
    env.server.revokeToken(revoked);
    // Another pod got a 401 for that token and invalidated it everywhere.
    await other.invalidate(revoked);
    await Promise.all([big, first]);
    await sleep(200);

    const later = await pod.getToken();
    await env.redis.del(`${prefix}:big`);
    shared.disconnect();

    expect(later === revoked).toBe(false);
  }, 30_000);
});

describe('an invalidated message for an old token after a newer refresh', () => {
  it('keeps the newer token in every pod, with no extra token request', async () => {
    const prefix = uniquePrefix('review-invalidate-old');
    const pods = [newCache(prefix), newCache(prefix), newCache(prefix)];
    const first = await pods[0]!.getToken();
    await Promise.all(pods.map((pod) => pod.getToken()));
    const newer = (await pods[1]!.refresh()).token;
    await sleep(100);

    await pods[2]!.invalidate(first);
    await sleep(100);

    expect(await Promise.all(pods.map((pod) => pod.getToken()))).toEqual([newer, newer, newer]);
    expect(env.server.counts().tokenRequests).toBe(2);
  });
});
