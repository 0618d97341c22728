// What fleet-worker.ts and the fleet tests agree on. It lives apart from the worker script because
// importing that script would run it.
import type { RefreshReason } from '@tokenfleet/core';

/** Line that a worker prints once its cache is connected and it waits for the start signal. */
export const READY_LINE = 'READY';

/** What a worker does after the start signal. */
export type FleetMode =
  /** `FLEET_CALLS` concurrent `getToken()` calls. */
  | 'get-token'
  /** `FLEET_CALLS` concurrent requests to the protected resource through `createAuthorizedFetch`. */
  | 'authorized-fetch'
  /** Requests to the protected resource through `createAuthorizedFetch` until SIGTERM. */
  | 'continuous';

/** Environment variables that the tests pass to fleet-worker.ts. */
export interface FleetWorkerEnv {
  FLEET_MODE: FleetMode;
  /** Base URL of the mock OAuth server. The worker signs in as the mock's default client. */
  FLEET_MOCK_URL: string;
  /** Key prefix of the token cache. */
  FLEET_KEY_PREFIX: string;
  /** Redis list on which the worker blocks after printing READY. One entry releases one worker. */
  FLEET_START_LIST: string;
  /** Concurrent calls: all at once in `get-token` and `authorized-fetch`, loops in `continuous`. */
  FLEET_CALLS: string;
  /** JSON of the `createTokenCache()` settings to use, such as `{"skewMs":300}`. */
  FLEET_CACHE_OPTIONS?: string;
  /** BullMQ queue name. When it is set, the cache gets `renewal: createRenewalQueue(...)`. */
  FLEET_QUEUE_NAME?: string;
  /** BullMQ key prefix of that queue. */
  FLEET_QUEUE_PREFIX?: string;
  /** Pause after each request of a `continuous` loop, in milliseconds. */
  FLEET_PAUSE_MS?: string;
}

/** The token cache settings that a test may pass in `FLEET_CACHE_OPTIONS`. */
export interface FleetCacheOptions {
  skewMs?: number;
  refreshAheadMs?: number;
  lockTtlMs?: number;
  requestTimeoutMs?: number;
}

/** A `refreshed` event that the worker's cache emitted. */
export interface ObservedRefresh {
  generation: number;
  reason: RefreshReason;
  origin: 'local' | 'remote';
}

/** What each worker prints after `RESULT `. Tokens appear only as SHA-256 hashes. */
export interface FleetWorkerResult {
  mode: FleetMode;
  /** Calls that settled, successful or not. */
  calls: number;
  /** SHA-256 (hex) of every distinct token that `getToken()` returned, sorted. */
  tokenHashes: string[];
  /** Count of responses by HTTP status, such as `{ "200": 1600 }`, empty in `get-token`. */
  statuses: Record<string, number>;
  /**
   * Resource responses with status 401, counted before `createAuthorizedFetch` retries them: a
   * caller whose retry succeeded sees 200, so `statuses` alone would hide these.
   */
  unauthorizedAttempts: number;
  /** Messages of the first 5 calls that rejected. `errorCount` counts them all. */
  errors: string[];
  errorCount: number;
  /** Every `refreshed` event of the worker's cache, in order. */
  refreshes: ObservedRefresh[];
}
