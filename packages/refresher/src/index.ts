export type { CacheCollection } from './cache-lookup.js';
export type { RedisConnectionOption } from './connection.js';
export { DEFAULT_REFRESHER_OPTIONS } from './defaults.js';
export type { CheckResult, HealthReport } from './health-server.js';
export { METRIC_NAMES, type RenewalRunOutcome } from './metrics.js';
export {
  type Refresher,
  type RefresherCacheOptions,
  type RefresherOptions,
  startRefresher,
} from './refresher.js';
export { RenewalCancelledError } from './renewal-processor.js';
export {
  createRenewalQueue,
  RENEWAL_BACKOFF_TYPE,
  RENEWAL_JOB_NAME,
  type RenewalJob,
  type RenewalJobData,
  type RenewalQueue,
  type RenewalQueueOptions,
  renewalJobId,
} from './renewal-queue.js';
export {
  type RefreshAheadEstimate,
  type RenewalSweep,
  type RenewalSweepOptions,
  type SweepResult,
  startRenewalSweep,
} from './renewal-sweep.js';
export {
  type RenewalWorker,
  type RenewalWorkerOptions,
  startRenewalWorker,
} from './renewal-worker.js';
export { computeRetryDelayMs, type RetryInput, STOP_RETRYING } from './retry-delay.js';
