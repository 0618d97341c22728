// Shared pieces of the review reproductions: each file starts its own redis-server and mock token
// endpoint on 127.0.0.1, so SIGSTOP, kills and INFO commandstats affect no other test run.
import { Writable } from 'node:stream';
import { quiqup, type TokenCache, type TokenProvider } from '@tokenfleet/core';
import { type MockOAuthServer, startMockOAuthServer } from '@tokenfleet/mock-oauth';
import { Redis } from 'ioredis';
import { type Logger, pino } from 'pino';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { type SpawnedRedisServer, spawnRedisServer } from '../harness/index.js';

export { spawnRedisServer, uniquePrefix } from '../harness/index.js';

export const CLIENT_ID = 'demo-client';
export const CLIENT_SECRET = 'demo-secret';

/** A Quiqup provider aimed at the mock, optionally through a `fetch` that edits responses. */
export function mockProvider(
  server: MockOAuthServer,
  options: { clientSecret?: string; fetch?: typeof fetch } = {},
): TokenProvider {
  return quiqup({
    environment: 'staging',
    baseUrl: server.url,
    clientId: CLIENT_ID,
    clientSecret: options.clientSecret ?? CLIENT_SECRET,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
}

/** A pino logger at trace whose raw output is kept as text. */
export function captureTraceLogs(): { logger: Logger; text(): string } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString('utf8'));
      callback();
    },
  });
  return { logger: pino({ level: 'trace' }, destination), text: () => chunks.join('') };
}

/** Resolves with `promise`, or with `'pending'` when it has not settled within `ms`. */
export async function settledWithin<T>(promise: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<'pending'>((resolve) => {
    timer = setTimeout(() => resolve('pending'), ms);
  });
  try {
    return await Promise.race([promise, pending]);
  } finally {
    clearTimeout(timer);
  }
}

/** Calls per command name from INFO commandstats, such as `{ evalsha: 12, get: 3 }`. */
export async function commandCounts(redis: Redis): Promise<Record<string, number>> {
  const info = await redis.info('commandstats');
  const counts: Record<string, number> = {};
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    counts[match[1]!] = Number(match[2]);
  }
  return counts;
}

/** Total commands between two commandstats snapshots, without the INFO calls themselves. */
export function commandsBetween(
  before: Record<string, number>,
  after: Record<string, number>,
): number {
  let total = 0;
  for (const [name, calls] of Object.entries(after)) {
    if (name !== 'info') {
      total += calls - (before[name] ?? 0);
    }
  }
  return total;
}

/** Sends SIGSTOP or SIGCONT to a spawned redis-server. */
export function signalRedis(pid: number | undefined, signal: 'SIGSTOP' | 'SIGCONT'): void {
  if (pid !== undefined) {
    process.kill(pid, signal);
  }
}

export type { SpawnedRedisServer as SpawnedRedisServerLike } from '../harness/index.js';

/** Servers that one test file starts for itself, and the caches its tests open. */
export interface ReviewEnvironment {
  readonly redisServer: SpawnedRedisServer;
  /** A client on that server, for reading keys and INFO. */
  readonly redis: Redis;
  readonly server: MockOAuthServer;
  /** Registers caches to be closed after the current test. */
  track(...opened: TokenCache[]): void;
}

/**
 * Starts a redis-server and a staging mock token endpoint for the calling test file. After each
 * test it closes the tracked caches and clears the mock's faults and counts; after the file it
 * stops both servers.
 */
export function useReviewEnvironment(): ReviewEnvironment {
  let redisServer: SpawnedRedisServer | undefined;
  let redis: Redis | undefined;
  let server: MockOAuthServer | undefined;
  const caches: TokenCache[] = [];

  beforeAll(async () => {
    redisServer = await spawnRedisServer();
    redis = new Redis(redisServer.url);
    server = await startMockOAuthServer({ preset: 'staging' });
  });

  afterEach(async () => {
    await Promise.all(caches.splice(0).map((cache) => cache.close()));
    server?.clearFaults();
    server?.resetCounts();
  });

  afterAll(async () => {
    redis?.disconnect();
    await server?.close();
    await redisServer?.stop();
  });

  return {
    get redisServer() {
      return started(redisServer);
    },
    get redis() {
      return started(redis);
    },
    get server() {
      return started(server);
    },
    track(...opened) {
      caches.push(...opened);
    },
  };
}

function started<T>(value: T | undefined): T {
  if (value === undefined) {
    throw new Error('the review environment is used before beforeAll started it');
  }
  return value;
}
