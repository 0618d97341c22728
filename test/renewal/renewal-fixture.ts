// Test-side helpers of the renewal tests. Each test has one fixture with a mock token endpoint,
// unique Redis key and queue prefixes, and every cache, queue, worker and sweep it opened, so that
// close() can stop them in order and delete what the test left in Redis.
import { randomBytes } from 'node:crypto';
import {
  createTokenCache,
  quiqup,
  type TokenCache,
  type TokenCacheOptions,
  type TokenProvider,
} from '@tokenfleet/core';
import {
  type MockOAuthClient,
  type MockOAuthServer,
  startMockOAuthServer,
} from '@tokenfleet/mock-oauth';
import {
  createRenewalQueue,
  type RenewalQueue,
  type RenewalQueueOptions,
  type RenewalSweep,
  type RenewalSweepOptions,
  type RenewalWorker,
  type RenewalWorkerOptions,
  startRenewalSweep,
  startRenewalWorker,
} from '@tokenfleet/refresher';
import type { JobState } from 'bullmq';
import { Redis } from 'ioredis';
import { type Logger, pino } from 'pino';
import { uniquePrefix } from '../harness/redis.js';
import { waitFor } from '../harness/wait-for.js';

/** Cache settings that a test may set. The fixture fills in Redis, provider, prefix and queue. */
export type PodCacheOptions = Omit<TokenCacheOptions, 'redis' | 'provider' | 'keyPrefix'>;

export interface RenewalFixtureOptions {
  /** Test name, part of every key prefix. */
  name: string;
  redisUrl: string;
  /** Token lifetime at the mock, in seconds. */
  expiresIn: number;
  /** Clients of the mock. Default: one client `renewal-client-0`. */
  clientCount?: number;
}

/** A pino logger that keeps every line as an object, for checks on what was logged. */
export interface CapturedLogs {
  logger: Logger;
  lines: Record<string, unknown>[];
  /** Lines whose `msg` is `message`. */
  withMessage(message: string): Record<string, unknown>[];
}

/** What one renewal test opened. `close()` stops all of it. */
export class RenewalFixture {
  readonly redisUrl: string;
  readonly mock: MockOAuthServer;
  readonly clients: readonly MockOAuthClient[];
  /** Prefix of the caches' keys. */
  readonly keyPrefix: string;
  readonly queueName: string;
  /** BullMQ prefix, a hash tag like the default `{tokenfleet}`. */
  readonly queuePrefix: string;
  /** A client for checks and deletes in the test itself. */
  readonly redis: Redis;

  readonly #workers: RenewalWorker[] = [];
  readonly #sweeps: RenewalSweep[] = [];
  readonly #caches: TokenCache[] = [];
  readonly #queues: RenewalQueue[] = [];

  private constructor(options: RenewalFixtureOptions, mock: MockOAuthServer) {
    const unique = randomBytes(4).toString('hex');
    this.redisUrl = options.redisUrl;
    this.mock = mock;
    this.clients = mockClients(options.clientCount ?? 1);
    this.keyPrefix = uniquePrefix(`renewal-${options.name}`);
    this.queueName = `renewal-${options.name}-${unique}`;
    this.queuePrefix = `{tftest-renewal-${unique}}`;
    this.redis = new Redis(options.redisUrl);
  }

  /** Starts the mock token endpoint and returns a fixture around it. */
  static async start(options: RenewalFixtureOptions): Promise<RenewalFixture> {
    const mock = await startMockOAuthServer({
      expiresIn: options.expiresIn,
      clients: mockClients(options.clientCount ?? 1),
    });
    return new RenewalFixture(options, mock);
  }

  /** Creates a Quiqup provider for client `index` of the mock. */
  provider(index = 0): TokenProvider {
    const client = this.clients[index];
    if (client === undefined) {
      throw new RangeError(`the mock has ${this.clients.length} clients, not ${index + 1}`);
    }
    return quiqup({
      environment: 'staging',
      baseUrl: this.mock.url,
      clientId: client.clientId,
      clientSecret: client.clientSecret,
    });
  }

  /** Opens a renewal queue on a connection of its own, as a separate pod would. */
  openQueue(options: Pick<RenewalQueueOptions, 'attempts' | 'backoffDelayMs'> = {}): RenewalQueue {
    const queue = createRenewalQueue({
      ...options,
      connection: this.redisUrl,
      queueName: this.queueName,
      prefix: this.queuePrefix,
    });
    this.#queues.push(queue);
    return queue;
  }

  /**
   * Opens a cache on a connection of its own for client `clientIndex`. Without `renewal` in the
   * options it gets a queue of its own, and `renewal: undefined` given explicitly means none.
   */
  openCache(options: PodCacheOptions = {}, clientIndex = 0): TokenCache {
    const renewal = 'renewal' in options ? options.renewal : this.openQueue();
    const cache = createTokenCache({
      ...options,
      redis: this.redisUrl,
      provider: this.provider(clientIndex),
      keyPrefix: this.keyPrefix,
      renewal,
    });
    this.#caches.push(cache);
    return cache;
  }

  /** Starts a renewal worker on this fixture's queue. */
  startWorker(
    caches: RenewalWorkerOptions['caches'],
    options: Partial<RenewalWorkerOptions> = {},
  ): RenewalWorker {
    const worker = startRenewalWorker({
      connection: this.redisUrl,
      queueName: this.queueName,
      prefix: this.queuePrefix,
      shutdownTimeoutMs: 1_000,
      ...options,
      caches,
    });
    this.#workers.push(worker);
    return worker;
  }

  /** Starts a repeating sweep on `queue`. */
  startSweep(options: Omit<RenewalSweepOptions, 'queue'> & { queue?: RenewalQueue }): RenewalSweep {
    const sweep = startRenewalSweep({ ...options, queue: options.queue ?? this.openQueue() });
    this.#sweeps.push(sweep);
    return sweep;
  }

  /** Waits until the job of `generation` is in one of `states`, and returns its state. */
  async waitForJobState(
    queue: RenewalQueue,
    tokenId: string,
    generation: number,
    states: readonly JobState[],
    timeoutMs = 15_000,
  ): Promise<JobState> {
    const state = await waitFor(
      async () => {
        const state = await queue.getRenewalJobState(tokenId, generation);
        return (states as readonly string[]).includes(state) ? (state as JobState) : false;
      },
      { timeoutMs, description: `renewal job ${tokenId}-${generation} in ${states.join(' or ')}` },
    );
    // waitFor resolves only with a truthy value, so never with false.
    return state as JobState;
  }

  /** Deletes every key of this fixture's BullMQ queue, as a Redis that lost them, and returns their count. */
  deleteQueueKeys(): Promise<number> {
    return deleteKeysMatching(this.redis, `${this.queuePrefix}:${this.queueName}:*`);
  }

  /** Stops workers, sweeps, caches and queues in that order, deletes the keys and stops the mock. */
  async close(): Promise<void> {
    await Promise.allSettled(this.#workers.map((worker) => worker.close()));
    await Promise.allSettled(this.#sweeps.map((sweep) => sweep.stop()));
    await Promise.allSettled(this.#caches.map((cache) => cache.close()));
    await Promise.allSettled(this.#queues.map((queue) => queue.close()));
    await deleteKeysMatching(this.redis, `${this.keyPrefix}:*`);
    await deleteKeysMatching(this.redis, `${this.queuePrefix}:*`);
    await this.redis.quit();
    await this.mock.close();
  }
}

/** Returns `count` mock clients, `renewal-client-<i>` with secret `renewal-secret-<i>`. */
export function mockClients(count: number): MockOAuthClient[] {
  return Array.from({ length: count }, (_, index) => ({
    clientId: `renewal-client-${index}`,
    clientSecret: `renewal-secret-${index}`,
  }));
}

/** Deletes every key that matches the SCAN pattern `pattern` and returns their count. */
export async function deleteKeysMatching(redis: Redis, pattern: string): Promise<number> {
  let deleted = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1_000);
    cursor = next;
    if (keys.length > 0) {
      deleted += await redis.del(...keys);
    }
  } while (cursor !== '0');
  return deleted;
}

/** Creates a pino logger at debug level that keeps every line as an object. */
export function captureLogs(): CapturedLogs {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(line: string) {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  );
  return {
    logger,
    lines,
    withMessage: (message) => lines.filter((line) => line.msg === message),
  };
}

/** pino's number of the `warn` level. */
export const PINO_WARN = 40;
