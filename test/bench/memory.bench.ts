// Measurement 6: resident memory of a pod process that holds 1,000 named tokens (1,000 caches, one
// per client, on one shared ioredis connection) against the same pod holding none.
import { startMockOAuthServer } from '@tokenfleet/mock-oauth';
import { startWorker } from '../harness/processes.js';
import { type BenchContext, benchPrefix, deleteKeys, type Section } from './bench-context.js';
import { type MemoryWorkerResult, memoryClientId } from './memory-contract.js';
import { summarize } from './stats.js';

const WORKER_SCRIPT = new URL('./memory-worker.ts', import.meta.url);

/** Secret of every mock client of this measurement; it never leaves 127.0.0.1. */
const CLIENT_SECRET = 'bench-secret';

const MIB = 2 ** 20;

export interface MemoryOptions {
  tokens: number;
  /** Rounds; each starts one pod of every kind, one after another. */
  rounds: number;
}

export async function runMemory(context: BenchContext, options: MemoryOptions): Promise<Section> {
  const clients = Array.from({ length: options.tokens }, (_, i) => ({
    clientId: memoryClientId(i),
    clientSecret: CLIENT_SECRET,
  }));
  const mock = await startMockOAuthServer({ preset: 'production', clients });
  const prefix = benchPrefix('memory');

  try {
    const results: Record<PodKind, MemoryWorkerResult[]> = { empty: [], full: [], subscribers: [] };
    const kinds = Object.keys(results) as PodKind[];
    for (let round = 0; round < options.rounds; round++) {
      context.log(`memory: round ${round + 1} of ${options.rounds}`);
      // The order rotates, so no pod kind always runs right after the same other one.
      for (let i = 0; i < kinds.length; i++) {
        const kind = kinds[(i + round) % kinds.length]!;
        const keyPrefix = `${prefix}:r${round}`;
        results[kind].push(await runPod(context, mock.url, keyPrefix, kind, options.tokens));
      }
    }
    return buildSection(results, options.tokens, mock.counts().tokenRequests);
  } finally {
    await deleteKeys(context.admin, prefix);
    await mock.close();
  }
}

/**
 * `empty`: no cache; `full`: one cache per token; `subscribers`: no cache, but as many subscribed
 * duplicates of the shared connection as there are tokens.
 */
type PodKind = 'empty' | 'full' | 'subscribers';

function runPod(
  context: BenchContext,
  mockUrl: string,
  keyPrefix: string,
  kind: PodKind,
  tokens: number,
): Promise<MemoryWorkerResult> {
  const worker = startWorker<MemoryWorkerResult>({
    script: WORKER_SCRIPT,
    env: {
      BENCH_REDIS_URL: context.redisUrl,
      BENCH_MOCK_URL: mockUrl,
      BENCH_KEY_PREFIX: keyPrefix,
      BENCH_TOKENS: String(kind === 'full' ? tokens : 0),
      BENCH_SUBSCRIBERS: String(kind === 'subscribers' ? tokens : 0),
      BENCH_CLIENT_SECRET: CLIENT_SECRET,
    },
  });
  return worker.result;
}

function buildSection(
  results: Record<PodKind, MemoryWorkerResult[]>,
  tokens: number,
  tokenRequests: number,
): Section {
  const { empty, full, subscribers } = results;
  const mib = (values: number[]) => summarize(values.map((value) => value / MIB));
  const perToken = (pick: (result: MemoryWorkerResult) => number) =>
    summarize(full.map((result, i) => (pick(result) - pick(empty[i]!)) / tokens));
  const perSubscriber = summarize(
    subscribers.map((result, i) => (result.rssBytes - empty[i]!.rssBytes) / tokens),
  );

  const rssPerToken = perToken((r) => r.rssBytes);
  const heapPerToken = perToken((r) => r.heapUsedBytes);
  const connectionsPerToken = perToken((r) => r.redisClients);

  return {
    title: `6. Memory of a pod holding ${tokens.toLocaleString('en-US')} tokens`,
    setup:
      `A pod process creates ${tokens.toLocaleString('en-US')} token caches, one per client of a ` +
      'mock that knows that many clients, all on one ioredis connection that it passes in, and ' +
      'gets every token (100 caches at a time). After 6 s, when the keep-alive connections of ' +
      'those token requests have closed, and two full garbage collections, it reads ' +
      '`process.memoryUsage()`. The comparison pod (1 s pause) loads the same modules and opens the ' +
      'same connection but creates no cache. Pods of both kinds alternate, one at a time; ' +
      'per-token figures pair each full pod with the empty pod of its round. A third kind of pod ' +
      `creates no cache but opens ${tokens.toLocaleString('en-US')} duplicates of the connection, ` +
      'each subscribed to a channel, to isolate what the subscriber connections cost. Token requests ' +
      `at the mock over all rounds: ${tokenRequests.toLocaleString('en-US')}.`,
    figures: [
      {
        name: 'RSS, no tokens',
        unit: 'MiB',
        summary: mib(empty.map((r) => r.rssBytes)),
        digits: 1,
      },
      {
        name: `RSS, ${tokens.toLocaleString('en-US')} tokens`,
        unit: 'MiB',
        summary: mib(full.map((r) => r.rssBytes)),
        digits: 1,
      },
      { name: 'RSS per token', unit: 'bytes', summary: rssPerToken, digits: 0 },
      { name: 'V8 heap used per token', unit: 'bytes', summary: heapPerToken, digits: 0 },
      {
        name: 'Redis connections per token',
        unit: 'connections',
        summary: connectionsPerToken,
        digits: 2,
      },
      {
        name: 'RSS per subscribed ioredis connection, no cache',
        unit: 'bytes',
        summary: perSubscriber,
        digits: 0,
      },
    ],
    notes: [
      'Each cache opens a subscriber connection of its own for its events channel ' +
        '(`TokenSubscription`, `packages/core/src/token-subscription.ts`, which calls ' +
        '`redis.duplicate()`), so a pod with many named tokens holds one Redis connection per ' +
        'token besides the shared one, and an ioredis client object for each. The last row ' +
        'measures that part alone. One subscriber connection per shared connection, with one ' +
        'SUBSCRIBE per channel, would remove it.',
    ],
  };
}
