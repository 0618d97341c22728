import {
  createTokenCache,
  type TokenCache,
  type TokenCacheOptions,
  type TokenProvider,
} from '@tokenfleet/core';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { componentLogger, integerOption, invalidArgType, invalidArgValue } from './arguments.js';
import { toCacheLookup } from './cache-lookup.js';
import { type RedisConnectionOption, useConnection } from './connection.js';
import { DEFAULT_REFRESHER_OPTIONS } from './defaults.js';
import { type CheckResult, startHealthServer } from './health-server.js';
import { createRenewalQueue, type RenewalQueue } from './renewal-queue.js';
import { type RenewalSweep, startRenewalSweep } from './renewal-sweep.js';
import { type RenewalWorker, startRenewalWorker } from './renewal-worker.js';
import { type RefresherParts, shutDownRefresher } from './shutdown.js';

/** How long `/healthz` waits for the reply to PING, in milliseconds. */
const PING_TIMEOUT_MS = 1_000;

/** Cache settings that the refresher passes to every `createTokenCache()` call. */
export type RefresherCacheOptions = Omit<
  TokenCacheOptions,
  'redis' | 'provider' | 'keyPrefix' | 'renewal' | 'logger' | 'metricsRegistry'
>;

export interface RefresherOptions {
  /** An ioredis client that the caller owns and closes, or a URL for a client the refresher opens and closes. */
  redis: RedisConnectionOption;
  /** One provider per token to renew; two providers for the same token are an error. */
  providers: readonly TokenProvider[];
  /** BullMQ queue name. Default `tokenfleet-renewal`. */
  queueName?: string;
  /** BullMQ key prefix. Default `{tokenfleet}`. */
  queuePrefix?: string;
  /** Prefix of the caches' Redis keys. Default `tokenfleet`, the cache's default. */
  keyPrefix?: string;
  /** Port of the health and metrics server; 0 picks a free one. Default: no server. */
  port?: number;
  /** Address of the health and metrics server. Default `127.0.0.1`. */
  host?: string;
  /** Period of the self-repair sweep, in milliseconds. Default 60000. */
  sweepIntervalMs?: number;
  /** Renewal jobs run at the same time. Default 4. */
  concurrency?: number;
  /** How long `close()` waits for running renewal jobs before handing them back, in milliseconds. Default 10000. */
  shutdownTimeoutMs?: number;
  /** More settings for every cache, such as `skewMs` or `refreshAheadMs`. */
  cacheOptions?: RefresherCacheOptions;
  /** pino logger for every component. Default: silent. */
  logger?: Logger;
  /** Registry that the caches and the worker register on and `/metrics` serves. Default: a new one. */
  metricsRegistry?: Registry;
}

/** A running refresher service. */
export interface Refresher {
  /** URL of the health and metrics server, or `undefined` without one. */
  readonly url: string | undefined;
  readonly caches: readonly TokenCache[];
  readonly queue: RenewalQueue;
  readonly worker: RenewalWorker;
  readonly sweep: RenewalSweep;
  readonly metricsRegistry: Registry;
  /** Shuts down in order and resolves within a bounded time; calling it again returns the same promise. */
  close(): Promise<void>;
}

/**
 * Starts the refresher service: a cache per provider, the renewal queue, worker and sweep, and
 * with `port` an HTTP server with `/healthz`, `/readyz` and `/metrics`.
 */
export async function startRefresher(options: RefresherOptions): Promise<Refresher> {
  if (options === null || typeof options !== 'object') {
    throw invalidArgType('options', 'an object', options);
  }
  if (!Array.isArray(options.providers) || options.providers.length === 0) {
    throw invalidArgValue(
      'options.providers',
      'a non-empty array of token providers',
      options.providers,
    );
  }
  const port =
    options.port === undefined ? undefined : integerOption('options.port', options.port, 0, 0);
  if (port !== undefined && port > 65_535) {
    throw invalidArgValue('options.port', 'an integer from 0 to 65535', port);
  }

  const logger = componentLogger(options.logger, 'refresher');
  const registry = options.metricsRegistry ?? new Registry();
  const connection = useConnection('options.redis', options.redis);
  const workerTimeoutMs = integerOption(
    'options.shutdownTimeoutMs',
    options.shutdownTimeoutMs,
    DEFAULT_REFRESHER_OPTIONS.shutdownTimeoutMs,
    0,
  );
  const parts: RefresherParts = {};

  try {
    const started = await startParts(options, connection.client, registry, parts);
    const server =
      port === undefined
        ? undefined
        : await startHealthServer({
            port,
            host: options.host ?? DEFAULT_REFRESHER_OPTIONS.host,
            registry,
            liveness: () => liveness(connection.client, started.worker),
            readiness: async () => readiness(started.worker, started.sweep),
            logger: componentLogger(options.logger, 'health-server'),
          });
    parts.server = server;
    logger.info(
      {
        url: server?.url,
        tokens: started.caches.map((cache) => cache.id),
        queue: started.queue.name,
      },
      'refresher started',
    );

    let closing: Promise<void> | undefined;
    return {
      url: server?.url,
      caches: started.caches,
      queue: started.queue,
      worker: started.worker,
      sweep: started.sweep,
      metricsRegistry: registry,
      close: () => {
        closing ??= shutDownRefresher(parts, connection, workerTimeoutMs, logger);
        return closing;
      },
    };
  } catch (err) {
    logger.error({ err }, 'refresher failed to start');
    await shutDownRefresher(parts, connection, workerTimeoutMs, logger);
    throw err;
  }
}

type StartedParts = Required<Omit<RefresherParts, 'server'>>;

/** Starts the queue, caches, worker and sweep, storing each in `parts` so that a failure can close them. */
async function startParts(
  options: RefresherOptions,
  client: ReturnType<typeof useConnection>['client'],
  registry: Registry,
  parts: RefresherParts,
): Promise<StartedParts> {
  parts.queue = createRenewalQueue({
    connection: client,
    queueName: options.queueName,
    prefix: options.queuePrefix,
    logger: options.logger,
  });

  parts.caches = [];
  for (const provider of options.providers) {
    parts.caches.push(
      createTokenCache({
        ...options.cacheOptions,
        redis: client,
        provider,
        keyPrefix: options.keyPrefix,
        renewal: parts.queue,
        logger: options.logger,
        metricsRegistry: registry,
      }),
    );
  }
  const caches = toCacheLookup('options.providers', parts.caches);

  parts.worker = startRenewalWorker({
    connection: client,
    caches,
    queueName: options.queueName,
    prefix: options.queuePrefix,
    concurrency: options.concurrency,
    shutdownTimeoutMs: options.shutdownTimeoutMs,
    logger: options.logger,
    metricsRegistry: registry,
  });
  parts.sweep = startRenewalSweep({
    queue: parts.queue,
    caches,
    intervalMs: options.sweepIntervalMs,
    logger: options.logger,
    metricsRegistry: registry,
  });
  return { caches: parts.caches, queue: parts.queue, worker: parts.worker, sweep: parts.sweep };
}

async function liveness(
  client: ReturnType<typeof useConnection>['client'],
  worker: RenewalWorker,
): Promise<Record<string, CheckResult>> {
  const redis = await pingRedis(client);
  const running = worker.isRunning();
  return {
    redis,
    worker: running ? { ok: true } : { ok: false, detail: 'renewal worker is not running' },
  };
}

function readiness(worker: RenewalWorker, sweep: RenewalSweep): Record<string, CheckResult> {
  return {
    worker: worker.isReady()
      ? { ok: true }
      : { ok: false, detail: 'renewal worker has not connected to Redis yet' },
    sweep:
      sweep.completedRuns > 0
        ? { ok: true }
        : { ok: false, detail: 'the first renewal sweep has not finished yet' },
  };
}

async function pingRedis(client: ReturnType<typeof useConnection>['client']): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(
      () => resolve({ ok: false, detail: `redis PING timed out after ${PING_TIMEOUT_MS} ms` }),
      PING_TIMEOUT_MS,
    );
  });
  const ping = client.ping().then(
    (): CheckResult => ({ ok: true }),
    (err: Error): CheckResult => ({ ok: false, detail: `redis PING failed: ${err.message}` }),
  );
  try {
    return await Promise.race([ping, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
