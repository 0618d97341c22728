// Order statistics for the benchmarks: run summaries (median and spread) and a mergeable latency
// histogram for measurements with too many samples to ship between processes.

/** One figure over several runs: the median and its spread. */
export interface RunSummary {
  runs: number;
  median: number;
  min: number;
  max: number;
  /** First and third quartile (nearest rank). */
  q1: number;
  q3: number;
}

/**
 * Returns the `p`-th percentile (0 < p <= 100) of `values` by the nearest-rank method: the
 * smallest sample with at least p% of the samples at or below it. With 500 samples, p99 is the
 * 495th smallest.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) {
    return Number.NaN;
  }
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

/** Returns the median of `values`: the mean of the two middle samples for an even count. */
export function median(values: readonly number[]): number {
  if (values.length === 0) {
    return Number.NaN;
  }
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Summarizes one figure measured once per run. */
export function summarize(values: readonly number[]): RunSummary {
  return {
    runs: values.length,
    median: median(values),
    min: Math.min(...values),
    max: Math.max(...values),
    q1: percentile(values, 25),
    q3: percentile(values, 75),
  };
}

/** Growth factor between two histogram buckets: each bucket spans 1% of its value. */
const BUCKET_GROWTH = 1.01;
const LOG_BUCKET_GROWTH = Math.log(BUCKET_GROWTH);

/** Bucket counts of a {@link LatencyHistogram}, as sent between processes. */
export type HistogramCounts = Record<string, number>;

/**
 * Counts latencies in logarithmic buckets of 1% width, so a percentile read from it is at most 1%
 * above the exact sample. Histograms of several processes merge without loss.
 */
export class LatencyHistogram {
  readonly counts: HistogramCounts;
  #total = 0;

  constructor(counts: HistogramCounts = {}) {
    this.counts = { ...counts };
    for (const count of Object.values(this.counts)) {
      this.#total += count;
    }
  }

  get total(): number {
    return this.#total;
  }

  /** Records one latency in nanoseconds; values below 1 ns go to the first bucket. */
  record(nanoseconds: number): void {
    const bucket = nanoseconds <= 1 ? 0 : Math.ceil(Math.log(nanoseconds) / LOG_BUCKET_GROWTH);
    this.counts[bucket] = (this.counts[bucket] ?? 0) + 1;
    this.#total += 1;
  }

  /** Adds every count of `counts` to this histogram. */
  merge(counts: HistogramCounts): void {
    for (const [bucket, count] of Object.entries(counts)) {
      this.counts[bucket] = (this.counts[bucket] ?? 0) + count;
      this.#total += count;
    }
  }

  /** Returns the upper bound, in nanoseconds, of the bucket that holds the `p`-th percentile. */
  percentile(p: number): number {
    if (this.#total === 0) {
      return Number.NaN;
    }
    const rank = Math.max(1, Math.ceil((p / 100) * this.#total));
    const buckets = Object.keys(this.counts)
      .map(Number)
      .sort((a, b) => a - b);
    let seen = 0;
    for (const bucket of buckets) {
      seen += this.counts[bucket]!;
      if (seen >= rank) {
        return BUCKET_GROWTH ** bucket;
      }
    }
    return BUCKET_GROWTH ** buckets.at(-1)!;
  }
}
