// Measurement 5a: Redis commands per 1,000 getToken() calls in steady state, counted by the bench's
// own redis-server (INFO stats total_commands_processed), less the commands of an idle interval of
// the same length on the same connections.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTokenCache, quiqup, type TokenCache } from '@tokenfleet/core';
import { DEFAULT_MOCK_OAUTH_OPTIONS, startMockOAuthServer } from '@tokenfleet/mock-oauth';
import type { Redis } from 'ioredis';
import { type BenchContext, benchPrefix, deleteKeys, type Section } from './bench-context.js';
import { summarize } from './stats.js';

/** How long the cache may take to serve from memory after its first token, in milliseconds. */
const WARM_UP_TIMEOUT_MS = 10_000;

/** Concurrent loops that share the calls of one round. */
const CONCURRENCY = 100;

export interface RedisCostOptions {
  rounds: number;
  /** getToken() calls per round. */
  calls: number;
}

/** One round: commands while the cache was called and while it was idle, and which commands. */
export interface RedisCostRound {
  calls: number;
  /** total_commands_processed delta around the calls, INFO commands included. */
  callCommands: number;
  /** The same delta around an idle interval as long as the calls took. */
  idleCommands: number;
  /** Commands other than INFO that Redis ran during the calls, by name (from INFO commandstats). */
  otherCommands: Record<string, number>;
}

export interface RedisCostResult {
  section: Section;
  rounds: RedisCostRound[];
}

export async function runRedisCost(
  context: BenchContext,
  options: RedisCostOptions,
): Promise<RedisCostResult> {
  const mock = await startMockOAuthServer({ preset: 'production' });
  const prefix = benchPrefix('redis-cost');
  const client = DEFAULT_MOCK_OAUTH_OPTIONS.clients[0]!;
  const cache = createTokenCache({
    redis: context.redisUrl,
    keyPrefix: prefix,
    provider: quiqup({
      environment: 'production',
      baseUrl: mock.url,
      clientId: client.clientId,
      clientSecret: client.clientSecret,
    }),
  });

  try {
    await warmUp(cache);
    context.log(`redis cost: ${options.rounds} rounds of ${options.calls} getToken() calls`);
    const rounds: RedisCostRound[] = [];
    for (let round = 0; round < options.rounds; round++) {
      rounds.push(await measureRound(context.admin, cache, options.calls));
    }
    return { section: buildSection(rounds), rounds };
  } finally {
    await cache.close();
    await deleteKeys(context.admin, prefix);
    await mock.close();
  }
}

/** Calls until the cache serves from memory: the token is held and the subscription is up. */
async function warmUp(cache: TokenCache): Promise<void> {
  const deadline = performance.now() + WARM_UP_TIMEOUT_MS;
  while ((await cache.getTokenInfo()).source !== 'memory') {
    if (performance.now() > deadline) {
      throw new Error(`the cache did not serve from memory within ${WARM_UP_TIMEOUT_MS} ms`);
    }
    await sleep(20);
  }
}

export async function measureRound(
  admin: Redis,
  cache: TokenCache,
  calls: number,
): Promise<RedisCostRound> {
  const statsBefore = await readCommandStats(admin);
  const before = await readTotalCommands(admin);
  const started = performance.now();
  const perLoop = Math.ceil(calls / CONCURRENCY);
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = 0; i < perLoop; i++) {
        await cache.getToken();
      }
    }),
  );
  const elapsedMs = performance.now() - started;
  const after = await readTotalCommands(admin);
  const statsAfter = await readCommandStats(admin);

  // The idle interval is at least 50 ms, so that a periodic command would show up in it.
  const idleBefore = await readTotalCommands(admin);
  await sleep(Math.max(50, elapsedMs));
  const idleAfter = await readTotalCommands(admin);

  const otherCommands: Record<string, number> = {};
  for (const [name, count] of Object.entries(statsAfter)) {
    const delta = count - (statsBefore[name] ?? 0);
    if (name !== 'info' && delta > 0) {
      otherCommands[name] = delta;
    }
  }
  return {
    calls: perLoop * CONCURRENCY,
    callCommands: after - before,
    idleCommands: idleAfter - idleBefore,
    otherCommands,
  };
}

/** Reads total_commands_processed; the INFO command itself is counted once it has run. */
async function readTotalCommands(admin: Redis): Promise<number> {
  const stats = await admin.info('stats');
  const match = /total_commands_processed:(\d+)/.exec(stats);
  if (match === null) {
    throw new Error('INFO stats has no total_commands_processed field');
  }
  return Number(match[1]);
}

/** Reads the calls of every command that Redis has run, from INFO commandstats. */
async function readCommandStats(admin: Redis): Promise<Record<string, number>> {
  const text = await admin.info('commandstats');
  const calls: Record<string, number> = {};
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    calls[match[1]!] = Number(match[2]);
  }
  return calls;
}

function buildSection(rounds: readonly RedisCostRound[]): Section {
  const perThousand = rounds.map(
    (round) => ((round.callCommands - round.idleCommands) / round.calls) * 1000,
  );
  const summary = summarize(perThousand);
  const others = rounds
    .map((round) => round.otherCommands)
    .filter((o) => Object.keys(o).length > 0);

  return {
    title: '5a. Cost: Redis commands per 1,000 getToken() calls in steady state',
    setup:
      'A warm tokenfleet cache in the bench process (7-day token, subscription up) is called ' +
      `${rounds[0]?.calls.toLocaleString('en-US')} times per round from ${CONCURRENCY} loops. ` +
      "The bench's own redis-server counts every command it runs: the " +
      '`total_commands_processed` delta around the calls, less the delta around an idle interval ' +
      'as long as the calls took on the same connections (both deltas include the INFO commands ' +
      'that read them), divided by the calls. INFO commandstats lists any other command that ran.',
    figures: [
      {
        name: 'Redis commands per 1,000 getToken()',
        unit: 'commands',
        summary,
        digits: 3,
        target: 'close to 0',
        met: summary.max === 0,
      },
    ],
    notes: [
      others.length === 0
        ? 'No command other than INFO ran during any round.'
        : `Commands other than INFO during the rounds: ${JSON.stringify(others)}.`,
    ],
  };
}
