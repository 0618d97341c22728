import { performance } from 'node:perf_hooks';
import type { RenewResult } from '@tokenfleet/core';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Outcome of one renewal job run: a `RenewResult` outcome, or why the run failed. */
export type RenewalRunOutcome = RenewResult['outcome'] | 'failed' | 'unrecoverable';

/** Metric names, for dashboards and alerts; the README explains each one. */
export const METRIC_NAMES = Object.freeze({
  renewals: 'tokenfleet_renewals_total',
  renewalLag: 'tokenfleet_renewal_lag_seconds',
  jobsRecreated: 'tokenfleet_renewal_jobs_recreated_total',
  timeToExpiry: 'tokenfleet_token_expiry_seconds',
});

// From a prompt run (0.1 s) to an hour late, which is the default refresh-ahead margin of a
// 7-day token: a lag in the top buckets means a renewal ran after its token's margin was gone.
const LAG_BUCKETS_SECONDS = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3_600];

/** Records what the renewal worker and the sweep do. */
export interface RefresherMetrics {
  countRun(outcome: RenewalRunOutcome): void;
  /** Records how late a job started, in milliseconds after its due time. */
  observeLag(lagMs: number): void;
  countRecreated(): void;
  /** Records the life left of a stored token, in milliseconds, `undefined` when Redis has none. */
  recordTokenLife(tokenId: string, remainingMs: number | undefined): void;
}

const NO_METRICS: RefresherMetrics = Object.freeze({
  countRun() {},
  observeLag() {},
  countRecreated() {},
  recordTokenLife() {},
});

// One metrics object per registry, so a worker and a sweep on one registry share the gauge's
// per-token state instead of the second registration failing. The names differ from those of
// `@tokenfleet/core` (such as `tokenfleet_renewal_overdue_seconds`), so caches can share the registry.
const metricsByRegistry = new WeakMap<Registry, RefresherMetrics>();

/** Returns the metrics on `registry`, registering them on first use, or a no-op without a registry. */
export function refresherMetrics(registry: Registry | undefined): RefresherMetrics {
  if (registry === undefined) {
    return NO_METRICS;
  }
  let metrics = metricsByRegistry.get(registry);
  if (metrics === undefined) {
    metrics = registerMetrics(registry);
    metricsByRegistry.set(registry, metrics);
  }
  return metrics;
}

function registerMetrics(registry: Registry): RefresherMetrics {
  // Local monotonic time when each token expires, 0 when none is stored: the gauge counts down
  // between sweeps without asking Redis at scrape time.
  const expiresAtByToken = new Map<string, number>();

  const renewals = new Counter({
    name: METRIC_NAMES.renewals,
    help: 'Renewal job runs by outcome: refreshed, fresh, superseded, failed (will retry if time allows) or unrecoverable.',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const lag = new Histogram({
    name: METRIC_NAMES.renewalLag,
    help: 'Seconds between the time a renewal job was due and the start of its first run.',
    buckets: LAG_BUCKETS_SECONDS,
    registers: [registry],
  });
  const recreated = new Counter({
    name: METRIC_NAMES.jobsRecreated,
    help: 'Renewal jobs that the sweep found missing for a stored token and added again.',
    registers: [registry],
  });
  new Gauge({
    name: METRIC_NAMES.timeToExpiry,
    help: 'Seconds until the stored token expires in Redis; 0 when no token is stored.',
    labelNames: ['token_id'],
    registers: [registry],
    collect() {
      const now = performance.now();
      for (const [tokenId, expiresAt] of expiresAtByToken) {
        this.set({ token_id: tokenId }, Math.max(0, expiresAt - now) / 1000);
      }
    },
  });
  return {
    countRun(outcome) {
      renewals.inc({ outcome });
    },
    observeLag(lagMs) {
      lag.observe(Math.max(0, lagMs) / 1000);
    },
    countRecreated() {
      recreated.inc();
    },
    recordTokenLife(tokenId, remainingMs) {
      const expiresAt = remainingMs === undefined ? 0 : performance.now() + remainingMs;
      expiresAtByToken.set(tokenId, expiresAt);
    },
  };
}
