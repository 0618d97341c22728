// What hot-path-worker.ts reports. It lives apart from the worker because importing the worker
// would run it.

export type HotPathVariant = 'in-memory' | 'tokenfleet' | 'redis-get';

export interface HotPathResult {
  /** Calls per second of each variant, one entry per round. */
  rounds: Array<Record<HotPathVariant, number>>;
  callsPerRound: Record<HotPathVariant, number>;
  concurrency: number;
  /** Whether the tokenfleet cache still served from memory after the last round. */
  memoryHits: boolean;
}
