import type { TokenCache, TokenStatus } from '@tokenfleet/core';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { componentLogger, integerOption, invalidArgType } from './arguments.js';
import { type CacheCollection, toCacheLookup } from './cache-lookup.js';
import { DEFAULT_REFRESHER_OPTIONS } from './defaults.js';
import { type RefresherMetrics, refresherMetrics } from './metrics.js';
import { type RenewalQueue, renewalJobId } from './renewal-queue.js';

/** Job states in which a renewal job will still run, so the sweep leaves it alone. */
const PENDING_STATES: ReadonlySet<string> = new Set([
  'delayed',
  'waiting',
  'active',
  'prioritized',
  'waiting-children',
]);

/** A refresh-ahead margin in milliseconds, or a function of the token's stored life. */
export type RefreshAheadEstimate = number | ((lifetimeMs: number) => number);

export interface RenewalSweepOptions {
  /** The queue to check and to add missing jobs to. */
  queue: RenewalQueue;
  /** The caches whose tokens the sweep checks; a `Map` must be keyed by token id and is read live. */
  caches: CacheCollection;
  /** Time between the end of one sweep and the start of the next, in milliseconds. Default 60000. */
  intervalMs?: number;
  /**
   * Refresh-ahead margin of a re-created job, in milliseconds, or a function of the token's
   * remaining life. Default: the cache's own margin function applied to the remaining life,
   * or 20% of the remaining life, at most one hour, for a cache without one.
   */
  refreshAheadMs?: RefreshAheadEstimate;
  /** pino logger; the sweep logs through `logger.child({ component: 'renewal-sweep' })`. Default: silent. */
  logger?: Logger;
  /** prom-client registry for the renewal metrics. Default: no metrics. */
  metricsRegistry?: Registry;
}

/** Counts of one sweep. */
export interface SweepResult {
  /** Caches checked, with or without a stored token. */
  checked: number;
  /** Jobs added because none would run for the stored generation. */
  recreated: number;
  /** Caches whose check failed; each failure is logged. */
  failed: number;
}

/** A running sweep. */
export interface RenewalSweep {
  /** Number of sweeps that have finished. */
  readonly completedRuns: number;
  /** Sweeps now, or joins the sweep that is running; two sweeps never overlap. */
  runOnce(): Promise<SweepResult>;
  /** Stops the timer and waits for a running sweep to finish. */
  stop(): Promise<void>;
}

/**
 * Starts the self-repair sweep: at once and then every `intervalMs`, it re-creates the renewal
 * job of every stored token whose job is missing, finished or failed.
 */
export function startRenewalSweep(options: RenewalSweepOptions): RenewalSweep {
  if (options === null || typeof options !== 'object') {
    throw invalidArgType('options', 'an object', options);
  }
  if (options.queue === null || typeof options.queue?.scheduleRenewal !== 'function') {
    throw invalidArgType(
      'options.queue',
      'a renewal queue from createRenewalQueue()',
      options.queue,
    );
  }
  const intervalMs = integerOption(
    'options.intervalMs',
    options.intervalMs,
    DEFAULT_REFRESHER_OPTIONS.sweepIntervalMs,
    1,
  );
  const refreshAheadMs = options.refreshAheadMs;
  if (refreshAheadMs !== undefined && typeof refreshAheadMs !== 'function') {
    integerOption('options.refreshAheadMs', refreshAheadMs, 0, 0);
  }

  const sweep = new RenewalSweeper({
    queue: options.queue,
    caches: toCacheLookup('options.caches', options.caches),
    intervalMs,
    refreshAheadMs,
    logger: componentLogger(options.logger, 'renewal-sweep'),
    metrics: refresherMetrics(options.metricsRegistry),
  });
  sweep.start();
  return sweep;
}

interface SweeperSettings {
  queue: RenewalQueue;
  caches: ReadonlyMap<string, TokenCache>;
  intervalMs: number;
  refreshAheadMs: RefreshAheadEstimate | undefined;
  logger: Logger;
  metrics: RefresherMetrics;
}

class RenewalSweeper implements RenewalSweep {
  completedRuns = 0;
  readonly #settings: SweeperSettings;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<SweepResult> | undefined;
  #stopped = false;

  constructor(settings: SweeperSettings) {
    this.#settings = settings;
  }

  start(): void {
    this.#settings.logger.info({ intervalMs: this.#settings.intervalMs }, 'renewal sweep started');
    this.#arm(0);
  }

  runOnce(): Promise<SweepResult> {
    this.#running ??= this.#sweep().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#running !== undefined) {
      await this.#running.catch(() => {});
    }
    this.#settings.logger.info('renewal sweep stopped');
  }

  #arm(delayMs: number): void {
    if (this.#stopped) {
      return;
    }
    this.#timer = setTimeout(() => {
      this.runOnce()
        .catch((err: unknown) => {
          this.#settings.logger.error({ err }, 'renewal sweep failed');
        })
        .finally(() => this.#arm(this.#settings.intervalMs));
    }, delayMs);
    this.#timer.unref();
  }

  async #sweep(): Promise<SweepResult> {
    const result: SweepResult = { checked: 0, recreated: 0, failed: 0 };
    for (const cache of [...this.#settings.caches.values()]) {
      if (this.#stopped) {
        break;
      }
      result.checked += 1;
      try {
        if (await this.#repair(cache)) {
          result.recreated += 1;
        }
      } catch (err) {
        result.failed += 1;
        this.#settings.logger.error({ err, tokenId: cache.id }, 'renewal sweep of token failed');
      }
    }

    this.completedRuns += 1;
    this.#settings.logger.debug(result, 'renewal sweep finished');
    return result;
  }

  /** Re-creates the job of the stored generation when none will run; returns whether it did. */
  async #repair(cache: TokenCache): Promise<boolean> {
    const { queue, metrics, logger } = this.#settings;
    const status = await cache.status();
    if (status.generation === undefined || status.remainingMs === undefined) {
      metrics.recordTokenLife(cache.id, undefined);
      return false;
    }
    metrics.recordTokenLife(cache.id, status.remainingMs);

    const generation = status.generation;
    const state = await queue.getRenewalJobState(cache.id, generation);
    const job = state === 'unknown' ? undefined : await queue.getRenewalJob(cache.id, generation);
    // The state comes from the queue's lists and sets, so a job whose hash is gone (evicted under
    // a maxmemory policy other than noeviction) still looks pending, but no worker can run it.
    if (PENDING_STATES.has(state) && job !== undefined) {
      return false;
    }

    // A completed or failed job keeps its id until retention removes it, and BullMQ ignores an
    // add with an id it holds, so the finished job goes first. An id left without its hash is
    // taken out of the queue's lists and sets the same way.
    if (job !== undefined) {
      await job.remove();
    } else if (state !== 'unknown') {
      await queue.bullQueue.remove(renewalJobId(cache.id, generation));
    }
    const delayMs = this.#delayMs(cache, status);
    await queue.scheduleRenewal({
      tokenId: cache.id,
      generation,
      delayMs,
      remainingMs: status.remainingMs,
    });

    metrics.countRecreated();
    logger.info(
      {
        tokenId: cache.id,
        generation,
        jobId: renewalJobId(cache.id, generation),
        previousState: state === 'unknown' ? 'missing' : state,
        delayMs,
      },
      'renewal job re-created',
    );
    return true;
  }

  /** Delay of a re-created job: due at the margin, but not before a fleet cooldown ends. */
  #delayMs(cache: TokenCache, status: TokenStatus): number {
    const remainingMs = status.remainingMs ?? 0;
    const lifetimeMs = status.lifetimeMs ?? remainingMs;
    return Math.max(0, remainingMs - this.#refreshAheadMs(cache, lifetimeMs), status.cooldownMs);
  }

  /** The margin the cache itself uses, unless the sweep's options set one. */
  #refreshAheadMs(cache: TokenCache, lifetimeMs: number): number {
    const configured = this.#settings.refreshAheadMs;
    if (typeof configured === 'number') {
      return configured;
    }
    if (typeof configured === 'function') {
      return configured(lifetimeMs);
    }
    return cache.refreshAheadMs(lifetimeMs);
  }
}
