// Measurement 1: getToken() calls per second on one core, against the in-memory floor and a
// Redis GET per call, all in one worker process and in the same run.
import { startMockOAuthServer } from '@tokenfleet/mock-oauth';
import { startWorker } from '../harness/processes.js';
import { type BenchContext, benchPrefix, type Section } from './bench-context.js';
import type { HotPathResult } from './hot-path-contract.js';
import { summarize } from './stats.js';

const WORKER_SCRIPT = new URL('./hot-path-worker.ts', import.meta.url);

/** Concurrent async loops per variant: enough GETs in flight that Redis pipelines them. */
const CONCURRENCY = 100;

export interface HotPathOptions {
  rounds: number;
  /** Target duration of one round of one variant, in milliseconds. */
  roundMs: number;
}

export async function runHotPath(context: BenchContext, options: HotPathOptions): Promise<Section> {
  const mock = await startMockOAuthServer({ preset: 'production' });
  try {
    context.log(`hot path: ${options.rounds} rounds of ${options.roundMs} ms per variant`);
    const worker = startWorker<HotPathResult>({
      script: WORKER_SCRIPT,
      env: {
        BENCH_REDIS_URL: context.redisUrl,
        BENCH_MOCK_URL: mock.url,
        BENCH_KEY_PREFIX: benchPrefix('hot-path'),
        BENCH_ROUNDS: String(options.rounds),
        BENCH_CONCURRENCY: String(CONCURRENCY),
        BENCH_ROUND_MS: String(options.roundMs),
      },
    });
    const result = await worker.result;
    return buildSection(result, mock.counts().tokenRequests);
  } finally {
    await mock.close();
  }
}

function buildSection(result: HotPathResult, tokenRequests: number): Section {
  const rates = (name: keyof HotPathResult['rounds'][number]) =>
    result.rounds.map((round) => round[name]);
  const toIdeal = result.rounds.map((round) => round.tokenfleet / round['in-memory']);
  const toRedis = result.rounds.map((round) => round.tokenfleet / round['redis-get']);
  const idealRatio = summarize(toIdeal);
  const redisRatio = summarize(toRedis);

  const notes: string[] = [];
  if (!result.memoryHits) {
    notes.push('The tokenfleet cache no longer served from memory after the last round.');
  }
  if (idealRatio.median < 0.8) {
    notes.push(
      'Missed: tokenfleet reached less than 0.8 x the in-memory floor. The hot path is ' +
        '`FleetTokenCache.getToken()` in `packages/core/src/token-cache.ts`. A ' +
        '`performance.now()` reading there costs about as much as the whole call of the floor.',
    );
  }

  return {
    title: '1. Hot path: getToken() on one core',
    setup:
      `One worker process (one JavaScript thread) runs each variant as ${result.concurrency} ` +
      'async loops that await one call after another; the rate is calls divided by the wall time ' +
      'of the round. Variants: a warm tokenfleet cache (token in memory, subscription up); an ' +
      'in-memory cache whose `getToken()` returns `Promise.resolve(token)` from a class field ' +
      '(the floor); and `redis.get(key)` on every call through ioredis with auto-pipelining, ' +
      `against the bench's own redis-server, a separate process. Each round runs every variant ` +
      `once, in rotating order; calls per round: ${JSON.stringify(result.callsPerRound)}. ` +
      `Ratios are taken within each round. Token requests during the measurement: ${tokenRequests}.`,
    figures: [
      {
        name: 'tokenfleet getToken()',
        unit: 'calls/s',
        summary: summarize(rates('tokenfleet')),
        digits: 0,
      },
      {
        name: 'in-memory floor',
        unit: 'calls/s',
        summary: summarize(rates('in-memory')),
        digits: 0,
      },
      {
        name: 'Redis GET per call',
        unit: 'calls/s',
        summary: summarize(rates('redis-get')),
        digits: 0,
      },
      {
        name: 'tokenfleet / in-memory',
        unit: 'x',
        summary: idealRatio,
        target: '>= 0.8',
        met: idealRatio.median >= 0.8,
      },
      {
        name: 'tokenfleet / Redis GET',
        unit: 'x',
        summary: redisRatio,
        digits: 1,
        target: '>= 50',
        met: redisRatio.median >= 50,
      },
    ],
    notes,
  };
}
