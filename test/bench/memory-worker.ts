// A pod of the memory measurement: with BENCH_TOKENS = N it creates N token caches, one per mock
// client, all on one shared ioredis connection, gets every token, then reports its memory after a
// full garbage collection. With N = 0 it loads the same modules and opens the same connection only.
//
// Environment: BENCH_REDIS_URL, BENCH_MOCK_URL, BENCH_KEY_PREFIX, BENCH_TOKENS,
// BENCH_CLIENT_SECRET.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createTokenCache, quiqup, type TokenCache } from '@tokenfleet/core';
import { Redis } from 'ioredis';
import { reportResult, requireEnv } from '../harness/worker-io.js';
import type { MemoryWorkerResult } from './memory-contract.js';
import { memoryClientId } from './memory-contract.js';

/** Caches that fetch their first token at the same time. */
const FETCH_BATCH = 100;

/** Pause after the last token, so connections and timers settle before the reading, in ms. */
const SETTLE_MS = 1_000;

const tokens = Number(requireEnv('BENCH_TOKENS'));
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

try {
  await redis.ping();
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

  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
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
  await redis.quit();
}

/** Reads how many connections the Redis server has open, from INFO clients. */
async function connectedClients(): Promise<number> {
  const info = await redis.info('clients');
  return Number(/connected_clients:(\d+)/.exec(info)?.[1] ?? Number.NaN);
}
