// A pod of the memory measurement: with BENCH_TOKENS = N it creates N token caches, one per mock
// client, all on one shared ioredis connection, gets every token, then reports its memory after a
// full garbage collection. With N = 0 it loads the same modules and opens the same connection only.
// With BENCH_SUBSCRIBERS = M it also opens M duplicates of that connection, each subscribed to a
// channel of its own, to show what the subscriber connections alone cost.
//
// Environment: BENCH_REDIS_URL, BENCH_MOCK_URL, BENCH_KEY_PREFIX, BENCH_TOKENS,
// BENCH_SUBSCRIBERS, BENCH_CLIENT_SECRET.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createTokenCache, quiqup, type TokenCache } from '@tokenfleet/core';
import { Redis } from 'ioredis';
import { reportResult, requireEnv } from '../harness/worker-io.js';
import type { MemoryWorkerResult } from './memory-contract.js';
import { memoryClientId } from './memory-contract.js';

/** Caches that fetch their first token at the same time. */
const FETCH_BATCH = 100;

/** Pause before the reading, so connections and timers settle, in milliseconds. */
const SETTLE_MS = 1_000;

/**
 * Pause before the reading in a pod that fetched tokens, in milliseconds. The token requests leave
 * keep-alive connections to the mock in fetch's pool. The mock's Node HTTP server closes idle
 * connections after 5 s (its default keepAliveTimeout), so after this pause they are gone.
 */
const FETCHED_SETTLE_MS = 6_000;

const tokens = Number(requireEnv('BENCH_TOKENS'));
const subscriberCount = Number(requireEnv('BENCH_SUBSCRIBERS'));
const mockUrl = requireEnv('BENCH_MOCK_URL');
const keyPrefix = requireEnv('BENCH_KEY_PREFIX');
const clientSecret = requireEnv('BENCH_CLIENT_SECRET');

// `gc()` without the --expose-gc flag on the command line, which the harness does not pass.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const redis = new Redis(requireEnv('BENCH_REDIS_URL'));
// Every cache adds an error listener to the shared connection.
redis.setMaxListeners(tokens + 10);
const caches: TokenCache[] = [];
const subscribers: Redis[] = [];

try {
  await redis.ping();
  for (let i = 0; i < subscriberCount; i++) {
    const subscriber = redis.duplicate();
    subscribers.push(subscriber);
    await subscriber.subscribe(`${keyPrefix}:subscriber:${i}`);
  }
  for (let i = 0; i < tokens; i++) {
    caches.push(
      createTokenCache({
        redis,
        keyPrefix,
        provider: quiqup({
          environment: 'production',
          baseUrl: mockUrl,
          clientId: memoryClientId(i),
          clientSecret,
        }),
      }),
    );
  }
  for (let i = 0; i < caches.length; i += FETCH_BATCH) {
    await Promise.all(caches.slice(i, i + FETCH_BATCH).map((cache) => cache.getToken()));
  }

  await new Promise((resolve) => setTimeout(resolve, tokens > 0 ? FETCHED_SETTLE_MS : SETTLE_MS));
  gc();
  gc();
  const usage = process.memoryUsage();
  const result: MemoryWorkerResult = {
    tokens,
    rssBytes: usage.rss,
    heapUsedBytes: usage.heapUsed,
    externalBytes: usage.external + usage.arrayBuffers,
    redisClients: await connectedClients(),
  };
  await reportResult(result);
} finally {
  await Promise.all(caches.map((cache) => cache.close()));
  for (const subscriber of subscribers) {
    subscriber.disconnect();
  }
  await redis.quit();
}

/** Reads how many connections the Redis server has open, from INFO clients. */
async function connectedClients(): Promise<number> {
  const info = await redis.info('clients');
  return Number(/connected_clients:(\d+)/.exec(info)?.[1] ?? Number.NaN);
}
