import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type {
  RenewResult,
  TokenCache,
  TokenCacheEvents,
  TokenInfo,
  TokenStatus,
} from '@tokenfleet/core';
import type { JobState } from 'bullmq';
import { Redis } from 'ioredis';
import { type Logger, pino } from 'pino';
import type { RenewalQueue } from '../src/index.js';

/** Redis of the test run: the global setup's server, or the machine's default one. */
export const REDIS_URL = process.env.TOKENFLEET_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Returns a queue name and BullMQ prefix that no other test uses. */
export function uniqueQueue(): { queueName: string; prefix: string } {
  const suffix = randomUUID().slice(0, 8);
  return { queueName: `renewal-${suffix}`, prefix: `{tftest-${suffix}}` };
}

/** Opens a Redis client for a test; the test closes it. */
export function openRedis(): Redis {
  return new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
}

/** Deletes the queue's keys, then closes it. */
export async function destroyQueue(queue: RenewalQueue): Promise<void> {
  await queue.bullQueue.obliterate({ force: true });
  await queue.close();
}

/** Creates a pino logger that keeps every line as an object, so a test can check what was logged. */
export function captureLogs(): {
  logger: Logger;
  lines: Record<string, unknown>[];
  find(message: string): Record<string, unknown> | undefined;
} {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(line: string) {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  );
  return { logger, lines, find: (message) => lines.find((line) => line.msg === message) };
}

/** Polls `check` every 20 ms until it returns a value other than undefined; fails after `timeoutMs`. */
export async function waitFor<T>(
  description: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Waits until the job of one generation reaches one of `states`, and returns the state. */
export function waitForJobState(
  queue: RenewalQueue,
  tokenId: string,
  generation: number,
  states: readonly JobState[],
  timeoutMs?: number,
): Promise<JobState | 'unknown'> {
  return waitFor(
    `job ${tokenId}-${generation} to be ${states.join(' or ')}`,
    async () => {
      const state = await queue.getRenewalJobState(tokenId, generation);
      return (states as readonly string[]).includes(state) ? state : undefined;
    },
    timeoutMs,
  );
}

/**
 * Token cache double for processor and sweep tests. `renew` and `status` run the functions that
 * the test sets and count calls. Every other method fails, since the refresher never calls them.
 */
export class FakeCache extends EventEmitter<TokenCacheEvents> implements TokenCache {
  readonly id: string;
  renewCalls: number[] = [];
  statusCalls = 0;
  onRenew: (generation: number) => Promise<RenewResult>;
  onStatus: () => Promise<TokenStatus>;
  closed = false;

  constructor(id = randomUUID().replaceAll('-', '')) {
    super();
    this.id = id;
    this.onRenew = async (generation) => ({
      outcome: 'refreshed',
      generation: generation + 1,
      remainingMs: 60_000,
    });
    this.onStatus = async () => this.storedStatus(undefined, undefined);
  }

  /** Builds a status with a stored token of `generation` and `remainingMs` of life, or with none. */
  storedStatus(generation: number | undefined, remainingMs: number | undefined): TokenStatus {
    return {
      tokenId: this.id,
      label: 'fake client',
      generationCounter: generation ?? 0,
      generation,
      remainingMs,
      lifetimeMs: remainingMs,
      refreshedAt: generation === undefined ? undefined : Date.now(),
      reason: generation === undefined ? undefined : 'missing',
      cooldownMs: 0,
    };
  }

  /** The core's default margin: 20% of the stored life, at most one hour. */
  refreshAheadMs(lifetimeMs: number): number {
    return Math.min(Math.floor(lifetimeMs * 0.2), 3_600_000);
  }

  renew(generation: number): Promise<RenewResult> {
    this.renewCalls.push(generation);
    return this.onRenew(generation);
  }

  status(): Promise<TokenStatus> {
    this.statusCalls += 1;
    return this.onStatus();
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  getToken(): Promise<string> {
    return Promise.reject(new Error('FakeCache.getToken is not used by the refresher'));
  }

  getTokenInfo(): Promise<TokenInfo> {
    return Promise.reject(new Error('FakeCache.getTokenInfo is not used by the refresher'));
  }

  invalidate(): Promise<boolean> {
    return Promise.reject(new Error('FakeCache.invalidate is not used by the refresher'));
  }

  refresh(): Promise<TokenInfo> {
    return Promise.reject(new Error('FakeCache.refresh is not used by the refresher'));
  }
}

/** Quiqup-shaped token endpoint on 127.0.0.1 that counts requests and responds with `status`. */
export interface TestTokenEndpoint {
  baseUrl: string;
  requests: number;
  /** HTTP status of the next responses; 200 sends a token. */
  status: number;
  /** While true, requests get no response until the endpoint closes. */
  hang: boolean;
  expiresInSeconds: number;
  close(): Promise<void>;
}

export async function startTokenEndpoint(expiresInSeconds: number): Promise<TestTokenEndpoint> {
  const endpoint = { requests: 0, status: 200, hang: false, expiresInSeconds } as TestTokenEndpoint;
  const server: Server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      endpoint.requests += 1;
      if (endpoint.hang) {
        return;
      }
      if (endpoint.status !== 200) {
        response.writeHead(endpoint.status, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ error: 'invalid_client' }));
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({
          access_token: randomUUID(),
          token_type: 'bearer',
          expires_in: endpoint.expiresInSeconds,
          created_at: Math.floor(Date.now() / 1000),
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint.baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  endpoint.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return endpoint;
}
