import type { RenewResult, TokenCache } from '@tokenfleet/core';
import { type ConnectionOptions, type MinimalJob, Worker } from 'bullmq';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { componentLogger, integerOption, invalidArgType, stringOption } from './arguments.js';
import { type CacheCollection, toCacheLookup } from './cache-lookup.js';
import {
  closeConnection,
  openDedicatedConnection,
  type RedisConnectionOption,
} from './connection.js';
import { DEFAULT_REFRESHER_OPTIONS } from './defaults.js';
import { refresherMetrics } from './metrics.js';
import {
  type ActiveRenewal,
  createRenewalProcessor,
  RenewalCancelledError,
  type RetryHint,
} from './renewal-processor.js';
import type { RenewalJobData } from './renewal-queue.js';
import { computeRetryDelayMs, STOP_RETRYING } from './retry-delay.js';
import { CONNECT_WAIT_MS, settleWithin } from './settle.js';

export interface RenewalWorkerOptions {
  /**
   * An ioredis client or a URL. The worker always opens its own connection (a duplicate of the
   * client, with `maxRetriesPerRequest: null` as BullMQ workers need) and closes it on `close()`.
   */
  connection: RedisConnectionOption;
  /** The caches whose tokens this worker renews; a `Map` must be keyed by token id and is read live. */
  caches: CacheCollection;
  /** BullMQ queue name. Default `tokenfleet-renewal`. */
  queueName?: string;
  /** BullMQ key prefix. Default `{tokenfleet}`. */
  prefix?: string;
  /** Renewal jobs run at the same time. Default 4. */
  concurrency?: number;
  /** Upper bound of one jittered retry delay, in milliseconds, before `Retry-After`. Default 300000. */
  maxBackoffDelayMs?: number;
  /**
   * How long `close()` waits for running jobs, in milliseconds, before it hands them back to the
   * queue for another worker. Default 10000; 0 hands them back at once.
   */
  shutdownTimeoutMs?: number;
  /**
   * How long the worker's lock on a running job lasts, in milliseconds. The worker extends it
   * every half of this while the job runs, so a worker that dies or stalls loses it after this
   * long. Default 30000.
   */
  lockDurationMs?: number;
  /**
   * Period of the check for stalled jobs, in milliseconds: a running job whose lock has lapsed
   * goes back to the waiting list, and a worker of the queue runs it again. Default 30000.
   */
  stalledIntervalMs?: number;
  /** pino logger; the worker logs through `logger.child({ component: 'renewal-worker' })`. Default: silent. */
  logger?: Logger;
  /** prom-client registry for the renewal metrics. Default: no metrics. */
  metricsRegistry?: Registry;
}

/** A running renewal worker. */
export interface RenewalWorker {
  readonly queueName: string;
  /** The BullMQ worker, for inspection and tests. */
  readonly bullWorker: Worker<RenewalJobData, RenewResult>;
  /** True while the worker takes jobs. */
  isRunning(): boolean;
  /** True once the worker's connection was ready. */
  isReady(): boolean;
  /** Resolves once the worker's connection is ready. */
  waitUntilReady(): Promise<void>;
  /**
   * Stops taking jobs, waits up to `shutdownTimeoutMs` for running ones, hands any still running
   * back to the queue, then closes the worker's connection. Calling it again returns the same promise.
   */
  close(): Promise<void>;
}

/** Starts a BullMQ worker that runs renewal jobs for `caches`. */
export function startRenewalWorker(options: RenewalWorkerOptions): RenewalWorker {
  if (options === null || typeof options !== 'object') {
    throw invalidArgType('options', 'an object', options);
  }
  const defaults = DEFAULT_REFRESHER_OPTIONS;
  const settings: WorkerSettings = {
    queueName: stringOption('options.queueName', options.queueName, defaults.queueName),
    prefix: stringOption('options.prefix', options.prefix, defaults.prefix),
    concurrency: integerOption('options.concurrency', options.concurrency, defaults.concurrency, 1),
    maxBackoffDelayMs: integerOption(
      'options.maxBackoffDelayMs',
      options.maxBackoffDelayMs,
      defaults.maxBackoffDelayMs,
      0,
    ),
    shutdownTimeoutMs: integerOption(
      'options.shutdownTimeoutMs',
      options.shutdownTimeoutMs,
      defaults.shutdownTimeoutMs,
      0,
    ),
    lockDurationMs: integerOption(
      'options.lockDurationMs',
      options.lockDurationMs,
      defaults.lockDurationMs,
      1,
    ),
    stalledIntervalMs: integerOption(
      'options.stalledIntervalMs',
      options.stalledIntervalMs,
      defaults.stalledIntervalMs,
      1,
    ),
  };
  const caches = toCacheLookup('options.caches', options.caches);
  const logger = componentLogger(options.logger, 'renewal-worker').child({
    queue: settings.queueName,
  });

  return new BullRenewalWorker(settings, options, caches, logger);
}

interface WorkerSettings {
  queueName: string;
  prefix: string;
  concurrency: number;
  maxBackoffDelayMs: number;
  shutdownTimeoutMs: number;
  lockDurationMs: number;
  stalledIntervalMs: number;
}

class BullRenewalWorker implements RenewalWorker {
  readonly queueName: string;
  readonly bullWorker: Worker<RenewalJobData, RenewResult>;
  readonly #settings: WorkerSettings;
  readonly #logger: Logger;
  readonly #client: ReturnType<typeof openDedicatedConnection>;
  readonly #activeRenewals = new Map<string, ActiveRenewal>();
  readonly #retryHints = new WeakMap<Error, RetryHint>();
  readonly #ready: Promise<void>;
  #isReady = false;
  #closing: Promise<void> | undefined;

  constructor(
    settings: WorkerSettings,
    options: RenewalWorkerOptions,
    caches: ReadonlyMap<string, TokenCache>,
    logger: Logger,
  ) {
    this.queueName = settings.queueName;
    this.#settings = settings;
    this.#logger = logger;
    this.#client = openDedicatedConnection('options.connection', options.connection, {
      maxRetriesPerRequest: null,
    });

    const processor = createRenewalProcessor({
      caches,
      queueName: settings.queueName,
      logger,
      metrics: refresherMetrics(options.metricsRegistry),
      retryHints: this.#retryHints,
      activeRenewals: this.#activeRenewals,
    });
    // NOTE: BullMQ 5.81 depends on its own ioredis release. Its class types differ from this
    // package's ioredis 5.9 in private members only, so the client works with either at run time.
    this.bullWorker = new Worker<RenewalJobData, RenewResult>(settings.queueName, processor, {
      connection: this.#client as unknown as ConnectionOptions,
      prefix: settings.prefix,
      concurrency: settings.concurrency,
      lockDuration: settings.lockDurationMs,
      stalledInterval: settings.stalledIntervalMs,
      settings: {
        backoffStrategy: (attemptsMade, _type, err, job) =>
          this.#retryDelayMs(attemptsMade, err, job),
      },
    });
    this.#listen();

    this.#ready = this.bullWorker.waitUntilReady().then(() => {
      this.#isReady = true;
      logger.info({ concurrency: settings.concurrency }, 'renewal worker started');
    });
    // A connection that never becomes ready is logged by the error listener; readiness stays false.
    this.#ready.catch(() => {});
  }

  isRunning(): boolean {
    return this.bullWorker.isRunning() && this.#closing === undefined;
  }

  isReady(): boolean {
    return this.#isReady;
  }

  async waitUntilReady(): Promise<void> {
    await this.#ready;
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // NOTE: BullMQ 5.81 removes its error listeners on close, so a connection that is still
    // connecting at close rejects later without a listener, as an unhandled rejection. Waiting
    // for the connect avoids that while Redis is up. While Redis is down, the wait ends after
    // CONNECT_WAIT_MS and the rejection can still happen.
    await settleWithin(this.#ready, CONNECT_WAIT_MS);
    const closed = this.bullWorker.close();
    const finished = await settleWithin(closed, this.#settings.shutdownTimeoutMs);

    if (!finished) {
      // BullMQ memoizes close(), so a later close(true) would not cut the wait short. Handing the
      // jobs back and aborting their processors ends the running jobs instead.
      await this.#handBackRunningJobs();
      this.bullWorker.cancelAllJobs('shutdown timeout');
      await closed;
    }

    await closeConnection(this.#client);
    this.#logger.info('renewal worker closed');
  }

  async #handBackRunningJobs(): Promise<void> {
    const timeoutMs = this.#settings.shutdownTimeoutMs;
    for (const [jobId, { job, lockToken }] of this.#activeRenewals) {
      const fields = {
        jobId,
        tokenId: job.data.tokenId,
        generation: job.data.generation,
        timeoutMs,
      };
      try {
        await job.moveToWait(lockToken);
        this.#logger.warn(fields, 'renewal job handed back: still running at the shutdown timeout');
      } catch (err) {
        this.#logger.warn(
          { ...fields, err },
          'renewal job hand-back failed; it is retried once its lock expires',
        );
      }
    }
  }

  #retryDelayMs(attemptsMade: number, err: Error | undefined, job: MinimalJob | undefined): number {
    if (err instanceof RenewalCancelledError) {
      return 0;
    }
    const hint = err === undefined ? undefined : this.#retryHints.get(err);
    const backoff = job?.opts.backoff;
    const baseDelayMs =
      typeof backoff === 'object' && typeof backoff.delay === 'number'
        ? backoff.delay
        : DEFAULT_REFRESHER_OPTIONS.backoffDelayMs;

    const delayMs = computeRetryDelayMs({
      attemptsMade,
      baseDelayMs,
      maxDelayMs: this.#settings.maxBackoffDelayMs,
      retryAfterMs: hint?.retryAfterMs,
      remainingMs: hint?.remainingMs,
    });

    const data = job?.data as RenewalJobData | undefined;
    const fields = { jobId: job?.id, tokenId: data?.tokenId, generation: data?.generation };
    if (delayMs === STOP_RETRYING) {
      this.#logger.warn(
        { ...fields, remainingMs: hint?.remainingMs },
        'renewal retries stopped: the token expires before the next retry, so getToken() refreshes it lazily',
      );
    } else {
      this.#logger.info(
        { ...fields, delayMs, attempt: attemptsMade + 1 },
        'renewal retry scheduled',
      );
    }
    return delayMs;
  }

  #listen(): void {
    const logger = this.#logger;
    let lastErrorLoggedAt = 0;
    let suppressedErrors = 0;

    // A Redis outage makes BullMQ emit an error per reconnect attempt: log one every 10 s.
    this.bullWorker.on('error', (err) => {
      const now = Date.now();
      if (now - lastErrorLoggedAt < 10_000) {
        suppressedErrors += 1;
        return;
      }
      logger.error({ err, suppressedErrors }, 'renewal worker error');
      lastErrorLoggedAt = now;
      suppressedErrors = 0;
    });

    this.bullWorker.on('failed', (job, err) => {
      // finishedOn is set only when the job leaves for the failed set, not when it is retried.
      if (
        job === undefined ||
        job.finishedOn === undefined ||
        err instanceof RenewalCancelledError
      ) {
        return;
      }
      const { tokenId, generation } = job.data;
      logger.error(
        { jobId: job.id, tokenId, generation, attemptsMade: job.attemptsMade, err },
        'renewal job failed; getToken() refreshes the token lazily and the sweep adds a new job',
      );
    });
  }
}
