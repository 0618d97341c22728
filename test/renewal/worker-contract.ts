// The contract between the renewal tests and renewal-worker-process.ts: the environment a test
// passes and the lines the worker prints. Both sides import it, so it must not import vitest.
import type { MockOAuthClient } from '@tokenfleet/mock-oauth';
import type { PodCacheOptions } from './renewal-fixture.js';

/** Stdout line that the worker prints once its BullMQ worker is connected. */
export const WORKER_READY_LINE = 'RENEWAL WORKER READY';

/** Settings of one worker process, passed as JSON in the `RENEWAL_WORKER_CONFIG` variable. */
export interface RenewalWorkerConfig {
  redisUrl: string;
  mockUrl: string;
  clients: MockOAuthClient[];
  keyPrefix: string;
  queueName: string;
  queuePrefix: string;
  /** JSON-safe cache settings. Each cache also gets the worker's renewal queue. */
  cacheOptions: Omit<PodCacheOptions, 'renewal' | 'logger' | 'metricsRegistry' | 'redis'>;
  /** Settings of `startRenewalWorker()` other than connection, caches and names. */
  workerOptions: {
    concurrency?: number;
    lockDurationMs?: number;
    stalledIntervalMs?: number;
    shutdownTimeoutMs?: number;
  };
}

/** Environment variable with the JSON of a {@link RenewalWorkerConfig}. */
export const WORKER_CONFIG_ENV = 'RENEWAL_WORKER_CONFIG';

/** What the worker reports after SIGTERM. */
export interface RenewalWorkerResult {
  /** Outcomes of the renewal runs that this process finished, in order. */
  outcomes: string[];
  /** Names of the process warnings that Node emitted, such as `TimeoutOverflowWarning`. */
  warnings: string[];
}
