// Redis commands per second while pods wait, counted with INFO commandstats on a private server.
import { setTimeout as sleep } from 'node:timers/promises';
import { createTokenCache } from '@tokenfleet/core';
import { describe, expect, it } from 'vitest';
import {
  commandCounts,
  commandsBetween,
  mockProvider,
  uniquePrefix,
  useReviewEnvironment,
} from './review-helpers.js';

const env = useReviewEnvironment();

describe('pods waiting for a lock holder whose token request hangs', () => {
  it('send a handful of Redis commands per pod per second, and one token request', async () => {
    const prefix = uniquePrefix('review-polling');
    env.server.setFaults({ latencyMs: 6_000, times: 1 });
    const options = {
      redis: env.redisServer.url,
      keyPrefix: prefix,
      provider: mockProvider(env.server),
    };
    const holder = createTokenCache(options);
    env.track(holder);
    const holding = holder.getToken();
    await sleep(200);
    const waiters = Array.from({ length: 5 }, () => createTokenCache(options));
    env.track(...waiters);
    const waiting = waiters.flatMap((pod) => Array.from({ length: 20 }, () => pod.getToken()));
    await sleep(500);

    const before = await commandCounts(env.redis);
    await sleep(4_000);
    const after = await commandCounts(env.redis);
    const tokens = new Set(await Promise.all([holding, ...waiting]));

    expect(tokens.size).toBe(1);
    expect(env.server.counts().tokenRequests).toBe(1);
    // commandstats counts the commands inside scripts too: one poll (lock attempt, lock PTTL,
    // two reads) is ~15, and each pod polls every 2 s: 5 pods x 2 polls x 15 = 150.
    expect(commandsBetween(before, after)).toBeLessThanOrEqual(200);
  }, 30_000);
});
