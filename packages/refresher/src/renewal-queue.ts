import type { RenewalRequest, RenewalScheduler, RenewResult } from '@tokenfleet/core';
import { type ConnectionOptions, type Job, type JobState, Queue } from 'bullmq';
import type { Logger } from 'pino';
import {
  componentLogger,
  integerOption,
  invalidArgType,
  invalidArgValue,
  stringOption,
} from './arguments.js';
import { closeConnection, type RedisConnectionOption, useConnection } from './connection.js';
import { DEFAULT_REFRESHER_OPTIONS } from './defaults.js';
import { CONNECT_WAIT_MS, settleWithin } from './settle.js';

/** Name of every renewal job; jobs differ by their job id. */
export const RENEWAL_JOB_NAME = 'renew';

/** Backoff type of renewal jobs; the worker's backoff strategy computes the delay. */
export const RENEWAL_BACKOFF_TYPE = 'tokenfleet-renewal';

/** Data of one renewal job. */
export interface RenewalJobData {
  /** Id of the token to renew, as `TokenCache.id`. */
  tokenId: string;
  /** Generation of the stored token that this job renews. */
  generation: number;
  /**
   * Wall-clock time when the job is due, in milliseconds since the epoch, for the renewal lag
   * metric only. BullMQ itself schedules delayed jobs by wall clock, so this adds no new clock.
   */
  dueAt?: number;
}

/** A renewal job as BullMQ returns it. */
export type RenewalJob = Job<RenewalJobData, RenewResult>;

export interface RenewalQueueOptions {
  /** An ioredis client that the caller owns and closes, or a URL for a client that the queue opens and closes. */
  connection: RedisConnectionOption;
  /** BullMQ queue name. Default `tokenfleet-renewal`. Workers must use the same name. */
  queueName?: string;
  /** BullMQ key prefix. Default `{tokenfleet}`, a hash tag, so the queue works on Redis Cluster. */
  prefix?: string;
  /** Runs of one renewal job, the first included. Default 10; 1 disables retries. */
  attempts?: number;
  /**
   * Ceiling of the first retry delay, in milliseconds, doubled for each further retry up to the
   * worker's `maxBackoffDelayMs`. Default 1000.
   */
  backoffDelayMs?: number;
  /** pino logger; the queue logs through `logger.child({ component: 'renewal-queue' })`. Default: silent. */
  logger?: Logger;
}

/** Adds and reads renewal jobs. Pass it as `renewal` to `createTokenCache()`. */
export interface RenewalQueue extends RenewalScheduler {
  readonly name: string;
  readonly prefix: string;
  /** The BullMQ queue, for inspection and tests. */
  readonly bullQueue: Queue<RenewalJobData, RenewResult>;
  /**
   * Adds the delayed job `renew-<tokenId>-<generation>`. Adding a job id that exists already,
   * in any state, changes nothing, so every pod may call it for the same generation.
   */
  scheduleRenewal(request: RenewalRequest): Promise<void>;
  /** Reads the job of one generation, or `undefined` when BullMQ has none. */
  getRenewalJob(tokenId: string, generation: number): Promise<RenewalJob | undefined>;
  /** Reads the state of the job of one generation, `unknown` when BullMQ has none. */
  getRenewalJobState(tokenId: string, generation: number): Promise<JobState | 'unknown'>;
  /** Closes the BullMQ queue and the connection the queue opened; a connection the caller passed stays open. */
  close(): Promise<void>;
}

/** Returns the id of the renewal job of one token generation. BullMQ job ids may not contain `:`. */
export function renewalJobId(tokenId: string, generation: number): string {
  return `renew-${tokenId}-${generation}`;
}

/** Creates a renewal queue. It connects lazily, on the first command. */
export function createRenewalQueue(options: RenewalQueueOptions): RenewalQueue {
  if (options === null || typeof options !== 'object') {
    throw invalidArgType('options', 'an object', options);
  }
  const defaults = DEFAULT_REFRESHER_OPTIONS;
  const settings = {
    name: stringOption('options.queueName', options.queueName, defaults.queueName),
    prefix: stringOption('options.prefix', options.prefix, defaults.prefix),
    attempts: integerOption('options.attempts', options.attempts, defaults.attempts, 1),
    backoffDelayMs: integerOption(
      'options.backoffDelayMs',
      options.backoffDelayMs,
      defaults.backoffDelayMs,
      0,
    ),
  };
  const connection = useConnection('options.connection', options.connection);
  return new BullRenewalQueue(settings, connection.client, connection.owned, options.logger);
}

interface QueueSettings {
  name: string;
  prefix: string;
  attempts: number;
  backoffDelayMs: number;
}

class BullRenewalQueue implements RenewalQueue {
  readonly name: string;
  readonly prefix: string;
  readonly bullQueue: Queue<RenewalJobData, RenewResult>;
  readonly #settings: QueueSettings;
  readonly #client: RedisConnectionClient;
  readonly #ownsClient: boolean;
  readonly #logger: Logger;
  #closing: Promise<void> | undefined;

  constructor(
    settings: QueueSettings,
    client: RedisConnectionClient,
    ownsClient: boolean,
    logger: Logger | undefined,
  ) {
    this.name = settings.name;
    this.prefix = settings.prefix;
    this.#settings = settings;
    this.#client = client;
    this.#ownsClient = ownsClient;
    this.#logger = componentLogger(logger, 'renewal-queue').child({ queue: settings.name });
    // NOTE: BullMQ 5.81 depends on its own ioredis release. Its class types differ from this
    // package's ioredis 5.9 in private members only, so the client works with either at run time.
    this.bullQueue = new Queue<RenewalJobData, RenewResult>(settings.name, {
      connection: client as unknown as ConnectionOptions,
      prefix: settings.prefix,
    });
    this.bullQueue.on('error', (err) => {
      this.#logger.error({ err }, 'renewal queue error');
    });
  }

  async scheduleRenewal(request: RenewalRequest): Promise<void> {
    checkRenewalRequest(request);
    const jobId = renewalJobId(request.tokenId, request.generation);
    // A negative delay means the renewal is overdue: run it at once. BullMQ needs whole milliseconds.
    const delayMs = Math.max(0, Math.ceil(request.delayMs));
    const data: RenewalJobData = {
      tokenId: request.tokenId,
      generation: request.generation,
      dueAt: Date.now() + delayMs,
    };

    await this.bullQueue.add(RENEWAL_JOB_NAME as never, data as never, {
      jobId,
      delay: delayMs,
      attempts: this.#settings.attempts,
      backoff: { type: RENEWAL_BACKOFF_TYPE, delay: this.#settings.backoffDelayMs },
      removeOnComplete: keepJobs(DEFAULT_REFRESHER_OPTIONS.keepCompleted),
      removeOnFail: keepJobs(DEFAULT_REFRESHER_OPTIONS.keepFailed),
    });
    this.#logger.debug(
      { tokenId: request.tokenId, generation: request.generation, jobId, delayMs },
      'renewal job added',
    );
  }

  async getRenewalJob(tokenId: string, generation: number): Promise<RenewalJob | undefined> {
    const job = await this.bullQueue.getJob(renewalJobId(tokenId, generation));
    return (job ?? undefined) as RenewalJob | undefined;
  }

  getRenewalJobState(tokenId: string, generation: number): Promise<JobState | 'unknown'> {
    return this.bullQueue.getJobState(renewalJobId(tokenId, generation));
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // BullMQ drops its error listeners on close, so a connect still in progress would reject
    // unhandled later; see the same wait in renewal-worker.ts.
    await settleWithin(this.bullQueue.waitUntilReady(), CONNECT_WAIT_MS);
    await this.bullQueue.close();
    if (this.#ownsClient) {
      await closeConnection(this.#client);
    }
    this.#logger.debug('renewal queue closed');
  }
}

type RedisConnectionClient = ReturnType<typeof useConnection>['client'];

function keepJobs(keep: { ageSeconds: number; count: number }): { age: number; count: number } {
  return { age: keep.ageSeconds, count: keep.count };
}

function checkRenewalRequest(request: RenewalRequest): void {
  if (request === null || typeof request !== 'object') {
    throw invalidArgType('request', 'an object', request);
  }
  if (typeof request.tokenId !== 'string' || !/^[^:\s]+$/.test(request.tokenId)) {
    throw invalidArgValue(
      'request.tokenId',
      'a non-empty string without ":" or spaces',
      request.tokenId,
    );
  }
  if (!Number.isSafeInteger(request.generation) || request.generation < 0) {
    throw invalidArgValue('request.generation', 'a non-negative integer', request.generation);
  }
  if (typeof request.delayMs !== 'number' || !Number.isFinite(request.delayMs)) {
    throw invalidArgValue('request.delayMs', 'a finite number', request.delayMs);
  }
}
