// What renewal-worker.ts and renewal.bench.ts agree on. It lives apart from the worker because
// importing the worker would run it.
import type { HistogramCounts } from './stats.js';

/** Width of one time slot of latency samples, in milliseconds. */
export const SLOT_MS = 50;

export type RenewalCommand =
  /** Starts calling at `startAt`; slot 0 begins then. */
  | { type: 'go'; startAt: number }
  /** Stops calling and reports RESULT. */
  | { type: 'stop' };

/** Settings of the pods' caches, the same as the refresher's. */
export interface RenewalCacheOptions {
  skewMs: number;
  requestTimeoutMs: number;
  lockTtlMs: number;
}

/** A `refreshed` event that a pod's own cache caused (origin `local`). */
export interface PodRefresh {
  generation: number;
  reason: string;
  at: number;
}

export interface RenewalWorkerResult {
  /** getToken() latencies per slot, in nanoseconds; slot i covers [startAt + i x SLOT_MS, +SLOT_MS). */
  slots: Record<string, HistogramCounts>;
  calls: number;
  errorCount: number;
  errors: string[];
  /** Refreshes that this pod ran itself rather than reading from memory. */
  podRefreshes: PodRefresh[];
}
