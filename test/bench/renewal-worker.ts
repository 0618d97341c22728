// A pod of the renewal measurement: a tokenfleet cache that adds renewal jobs to the bench's BullMQ
// queue, called without pause from the go command until the stop command. Every getToken() call is
// timed and counted in a latency histogram of its 50 ms slot.
//
// Environment: BENCH_REDIS_URL, BENCH_MOCK_URL, BENCH_KEY_PREFIX, BENCH_CONTROL_PREFIX,
// BENCH_QUEUE_NAME, BENCH_QUEUE_PREFIX, BENCH_CACHE_OPTIONS (JSON of RenewalCacheOptions).
import { performance } from 'node:perf_hooks';
import { createTokenCache, quiqup } from '@tokenfleet/core';
import { DEFAULT_MOCK_OAUTH_OPTIONS } from '@tokenfleet/mock-oauth';
import { createRenewalQueue } from '@tokenfleet/refresher';
import { reportResult, requireEnv, workerIndex } from '../harness/worker-io.js';
import { CommandReader, commandList, emitLine, sharedNow, waitUntil } from './bench-io.js';
import {
  type PodRefresh,
  type RenewalCacheOptions,
  type RenewalCommand,
  type RenewalWorkerResult,
  SLOT_MS,
} from './renewal-contract.js';
import { LatencyHistogram } from './stats.js';

/** getToken() calls per tick, awaited one after another. */
const CALLS_PER_TICK = 10;

/** Interval between ticks, in milliseconds: at most 10,000 calls/s per pod. */
const TICK_MS = 1;

/** Error messages kept; `errorCount` has them all. */
const ERRORS_KEPT = 3;

const redisUrl = requireEnv('BENCH_REDIS_URL');
const client = DEFAULT_MOCK_OAUTH_OPTIONS.clients[0]!;
const cacheOptions = JSON.parse(requireEnv('BENCH_CACHE_OPTIONS')) as RenewalCacheOptions;

const queue = createRenewalQueue({
  connection: redisUrl,
  queueName: requireEnv('BENCH_QUEUE_NAME'),
  prefix: requireEnv('BENCH_QUEUE_PREFIX'),
});
const cache = createTokenCache({
  ...cacheOptions,
  redis: redisUrl,
  keyPrefix: requireEnv('BENCH_KEY_PREFIX'),
  provider: quiqup({
    environment: 'staging',
    baseUrl: requireEnv('BENCH_MOCK_URL'),
    clientId: client.clientId,
    clientSecret: client.clientSecret,
  }),
  renewal: queue,
});
const commands = new CommandReader(
  redisUrl,
  commandList(requireEnv('BENCH_CONTROL_PREFIX'), workerIndex()),
);

const slots = new Map<number, LatencyHistogram>();
const podRefreshes: PodRefresh[] = [];
const result: RenewalWorkerResult = {
  slots: {},
  calls: 0,
  errorCount: 0,
  errors: [],
  podRefreshes,
};
cache.on('refreshed', (event) => {
  if (event.origin === 'local') {
    podRefreshes.push({ generation: event.generation, reason: event.reason, at: sharedNow() });
  }
});

try {
  await cache.status();
  await emitLine('ready', {});
  const go = await commands.next<RenewalCommand>();
  if (go.type !== 'go') {
    throw new Error(`expected a go command, got ${go.type}`);
  }

  await waitUntil(go.startAt);
  const timer = startCalling(go.startAt);
  const stop = await commands.next<RenewalCommand>();
  clearInterval(timer);
  if (stop.type !== 'stop') {
    throw new Error(`expected a stop command, got ${stop.type}`);
  }

  for (const [slot, histogram] of slots) {
    result.slots[slot] = histogram.counts;
  }
  await reportResult(result);
} finally {
  commands.close();
  await cache.close();
  await queue.close();
}

/** Calls getToken() in ticks; a tick that is still running when the next is due is skipped. */
function startCalling(startAt: number): NodeJS.Timeout {
  let running = false;
  const tick = async () => {
    if (running) {
      return;
    }
    running = true;
    try {
      for (let i = 0; i < CALLS_PER_TICK; i++) {
        await timedCall(startAt);
      }
    } finally {
      running = false;
    }
  };
  return setInterval(() => void tick(), TICK_MS);
}

async function timedCall(startAt: number): Promise<void> {
  const started = performance.now();
  try {
    await cache.getToken();
  } catch (err) {
    result.errorCount += 1;
    if (result.errors.length < ERRORS_KEPT) {
      result.errors.push(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
    }
  }
  const ended = performance.now();
  result.calls += 1;

  const slot = Math.floor((performance.timeOrigin + started - startAt) / SLOT_MS);
  let histogram = slots.get(slot);
  if (histogram === undefined) {
    histogram = new LatencyHistogram();
    slots.set(slot, histogram);
  }
  histogram.record((ended - started) * 1e6);
}
