import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { RefreshReason } from './token-cache-types.js';

/** The layer a token came from, as counted by `tokenfleet_cache_hits_total`. */
export type CacheLayer = 'memory' | 'redis' | 'upstream';

/** The outcome of a refresh, as counted by `tokenfleet_refreshes_total`. */
export type RefreshOutcome = 'success' | 'failure' | 'fenced' | 'skipped';

/** Live state that one cache reports when the registry is scraped. */
export interface CacheMetricsSource {
  tokenId: string;
  /** Memory hits since the cache started; a plain counter keeps the hot path free of labels. */
  memoryHits(): number;
  /** Life left of the token in memory, in milliseconds, or undefined when none is held. */
  remainingMs(): number | undefined;
  /** How long the renewal is overdue, in milliseconds, 0 when it is not. */
  renewalOverdueMs(): number;
  /** Whether the cache works without Redis right now. */
  degraded(): boolean;
}

/** The metrics of every cache on one registry. */
export class CacheMetrics {
  readonly #sources = new Set<CacheMetricsSource>();
  readonly #hits: Counter<'layer' | 'token_id'>;
  readonly #refreshes: Counter<'reason' | 'outcome' | 'token_id'>;
  readonly #requestDuration: Histogram<'outcome'>;
  readonly #lockWait: Histogram;

  constructor(registry: Registry) {
    const sources = this.#sources;
    const registers = [registry];

    // Memory hits are read from each cache at scrape time instead of counted on the hot path.
    const previousMemoryHits = new Map<CacheMetricsSource, number>();
    this.#hits = new Counter({
      name: 'tokenfleet_cache_hits_total',
      help: 'Tokens handed out, by the layer that held them (upstream: after a token request).',
      labelNames: ['layer', 'token_id'],
      registers,
      collect() {
        for (const source of sources) {
          const total = source.memoryHits();
          const delta = total - (previousMemoryHits.get(source) ?? 0);
          previousMemoryHits.set(source, total);
          this.labels({ layer: 'memory', token_id: source.tokenId }).inc(delta);
        }
      },
    });
    this.#refreshes = new Counter({
      name: 'tokenfleet_refreshes_total',
      help: 'Refresh attempts by reason and outcome (fenced: the write lost to a newer generation).',
      labelNames: ['reason', 'outcome', 'token_id'],
      registers,
    });
    this.#requestDuration = new Histogram({
      name: 'tokenfleet_token_request_duration_seconds',
      help: 'Duration of token endpoint requests.',
      labelNames: ['outcome'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.#lockWait = new Histogram({
      name: 'tokenfleet_lock_wait_seconds',
      help: 'Time a pod waited for another pod that held the refresh lock.',
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30],
      registers,
    });
    new Gauge({
      name: 'tokenfleet_token_remaining_seconds',
      help: 'Life left of the token held in memory.',
      labelNames: ['token_id'],
      registers,
      collect() {
        this.reset();
        for (const source of sources) {
          const remainingMs = source.remainingMs();
          if (remainingMs !== undefined) {
            this.set({ token_id: source.tokenId }, Math.max(0, remainingMs) / 1000);
          }
        }
      },
    });
    new Gauge({
      name: 'tokenfleet_renewal_overdue_seconds',
      help: 'How long past its due time a renewal has not happened; 0 when on time.',
      labelNames: ['token_id'],
      registers,
      collect() {
        this.reset();
        for (const source of sources) {
          this.set({ token_id: source.tokenId }, source.renewalOverdueMs() / 1000);
        }
      },
    });
    new Gauge({
      name: 'tokenfleet_degraded',
      help: '1 while the cache works without Redis (in-process tokens only).',
      labelNames: ['token_id'],
      registers,
      collect() {
        this.reset();
        for (const source of sources) {
          this.set({ token_id: source.tokenId }, source.degraded() ? 1 : 0);
        }
      },
    });
  }

  add(source: CacheMetricsSource): void {
    this.#sources.add(source);
  }

  remove(source: CacheMetricsSource): void {
    this.#sources.delete(source);
  }

  countHit(tokenId: string, layer: Exclude<CacheLayer, 'memory'>): void {
    this.#hits.inc({ layer, token_id: tokenId });
  }

  countRefresh(tokenId: string, reason: RefreshReason, outcome: RefreshOutcome): void {
    this.#refreshes.inc({ reason, outcome, token_id: tokenId });
  }

  observeTokenRequest(seconds: number, outcome: 'success' | 'failure'): void {
    this.#requestDuration.observe({ outcome }, seconds);
  }

  observeLockWait(seconds: number): void {
    this.#lockWait.observe(seconds);
  }
}

const metricsByRegistry = new WeakMap<Registry, CacheMetrics>();

/** Returns the metrics of `registry`, registering them on first use so that caches can share it. */
export function cacheMetricsFor(registry: Registry): CacheMetrics {
  let metrics = metricsByRegistry.get(registry);
  if (metrics === undefined) {
    metrics = new CacheMetrics(registry);
    metricsByRegistry.set(registry, metrics);
  }
  return metrics;
}
