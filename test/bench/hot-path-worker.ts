// Hot path throughput in one process (one JavaScript thread): getToken() of a warm tokenfleet
// cache, of an in-memory cache that only wraps the token in a promise, and a Redis GET per call.
// Every variant runs as `concurrency` async loops that await one call after another.
//
// Environment: BENCH_REDIS_URL, BENCH_MOCK_URL, BENCH_KEY_PREFIX, BENCH_ROUNDS,
// BENCH_CONCURRENCY, BENCH_ROUND_MS.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTokenCache, quiqup } from '@tokenfleet/core';
import { DEFAULT_MOCK_OAUTH_OPTIONS } from '@tokenfleet/mock-oauth';
import { Redis } from 'ioredis';
import { reportResult, requireEnv } from '../harness/worker-io.js';
import type { HotPathResult, HotPathVariant } from './hot-path-contract.js';

/** Calls of the calibration pass that sizes each round. */
const CALIBRATION_CALLS = 200_000;

/** How long the cache may take to serve from memory after its first token, in milliseconds. */
const WARM_UP_TIMEOUT_MS = 10_000;

const redisUrl = requireEnv('BENCH_REDIS_URL');
const keyPrefix = requireEnv('BENCH_KEY_PREFIX');
const rounds = Number(requireEnv('BENCH_ROUNDS'));
const concurrency = Number(requireEnv('BENCH_CONCURRENCY'));
const roundMs = Number(requireEnv('BENCH_ROUND_MS'));
const client = DEFAULT_MOCK_OAUTH_OPTIONS.clients[0]!;

/** The floor: a cache with the same async signature that only wraps a token held in a field. */
class InMemoryTokenCache {
  readonly #token: string;

  constructor(token: string) {
    this.#token = token;
  }

  getToken(): Promise<string> {
    return Promise.resolve(this.#token);
  }
}

const cache = createTokenCache({
  redis: redisUrl,
  keyPrefix,
  provider: quiqup({
    environment: 'production',
    baseUrl: requireEnv('BENCH_MOCK_URL'),
    clientId: client.clientId,
    clientSecret: client.clientSecret,
  }),
});
// Auto-pipelining writes every GET issued in one event-loop turn in a single socket write, which
// is the fastest that ioredis reads Redis per call.
const redis = new Redis(redisUrl, { enableAutoPipelining: true });

try {
  const token = await warmUp();
  const inMemory = new InMemoryTokenCache(token);
  const redisKey = `${keyPrefix}:plain-token`;
  await redis.set(redisKey, token);

  const variants: Record<HotPathVariant, () => Promise<unknown>> = {
    'in-memory': () => inMemory.getToken(),
    tokenfleet: () => cache.getToken(),
    'redis-get': () => redis.get(redisKey),
  };
  const names = Object.keys(variants) as HotPathVariant[];

  // Calibration also warms up the JIT, so every round measures optimized code.
  const callsPerRound = {} as Record<HotPathVariant, number>;
  for (const name of names) {
    const rate = await measure(variants[name], CALIBRATION_CALLS);
    callsPerRound[name] = roundUp(rate * (roundMs / 1000), concurrency);
  }

  const results: Array<Record<HotPathVariant, number>> = [];
  for (let round = 0; round < rounds; round++) {
    // The order rotates, so no variant always runs right after the same other one.
    const order = names.map((_, i) => names[(i + round) % names.length]!);
    const rates = {} as Record<HotPathVariant, number>;
    for (const name of order) {
      rates[name] = await measure(variants[name], callsPerRound[name]);
    }
    results.push(rates);
  }

  const memoryHits = (await cache.getTokenInfo()).source === 'memory';
  const result: HotPathResult = { rounds: results, callsPerRound, concurrency, memoryHits };
  await reportResult(result);
} finally {
  await cache.close();
  redis.disconnect();
}

/** Fetches the token and calls until the cache serves it from memory; returns it. */
async function warmUp(): Promise<string> {
  const deadline = performance.now() + WARM_UP_TIMEOUT_MS;
  for (;;) {
    const info = await cache.getTokenInfo();
    if (info.source === 'memory') {
      return info.token;
    }
    if (performance.now() > deadline) {
      throw new Error(`the cache did not serve from memory within ${WARM_UP_TIMEOUT_MS} ms`);
    }
    await sleep(20);
  }
}

/** Runs `calls` calls in `concurrency` loops and returns the calls per second. */
async function measure(call: () => Promise<unknown>, calls: number): Promise<number> {
  const perLoop = Math.ceil(calls / concurrency);
  const loop = async () => {
    for (let i = 0; i < perLoop; i++) {
      await call();
    }
  };

  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, loop));
  const seconds = (performance.now() - start) / 1000;
  return (perLoop * concurrency) / seconds;
}

function roundUp(value: number, multiple: number): number {
  return Math.max(multiple, Math.ceil(value / multiple) * multiple);
}
