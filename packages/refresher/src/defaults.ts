/**
 * Defaults of every optional setting in this package. Each option's TSDoc repeats its default;
 * the README table lists them too, and a test checks both against this object.
 */
export const DEFAULT_REFRESHER_OPTIONS = Object.freeze({
  /** Queue name; deployments that renew different sets of clients use different names. */
  queueName: 'tokenfleet-renewal',
  /** BullMQ key prefix. The braces make it a hash tag, so every key of a queue lands on one Redis Cluster slot. */
  prefix: '{tokenfleet}',
  /** Runs of one renewal job, the first included. */
  attempts: 10,
  /** Ceiling of the first retry delay in milliseconds; the ceiling doubles with each retry. */
  backoffDelayMs: 1_000,
  /** Upper bound of one retry delay in milliseconds, before `Retry-After` is applied. */
  maxBackoffDelayMs: 300_000,
  /** Renewal jobs that one worker runs at the same time. */
  concurrency: 4,
  /** Period of the self-repair sweep in milliseconds. */
  sweepIntervalMs: 60_000,
  /** How long shutdown waits for running renewal jobs before it hands them back, in milliseconds. */
  shutdownTimeoutMs: 10_000,
  /** Lock of a running job in milliseconds, as BullMQ 5.81's default: a dead worker's job runs again after this. */
  lockDurationMs: 30_000,
  /** Period of BullMQ's stalled-job check in milliseconds, as BullMQ 5.81's default. */
  stalledIntervalMs: 30_000,
  /** Address that the health and metrics server listens on. */
  host: '127.0.0.1',
  /** How long a completed job is kept, in seconds, and how many at most: enough to inspect a day. */
  keepCompleted: Object.freeze({ ageSeconds: 86_400, count: 1_000 }),
  /** How long a failed job is kept, in seconds, and how many at most: a week, to debug a rejected client. */
  keepFailed: Object.freeze({ ageSeconds: 604_800, count: 1_000 }),
});
