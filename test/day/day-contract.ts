// What day-pod.ts and the day test agree on. It lives apart from the pod script because importing
// that script would run it, and it imports no vitest because the pod runs under plain node.
import type { RefreshReason, TokenSource } from '@tokenfleet/core';

export { READY_LINE } from '../fleet/fleet-contract.js';

/** Environment variables that the test passes to day-pod.ts. */
export interface DayPodEnv {
  /** Base URL of the mock OAuth server. */
  DAY_MOCK_URL: string;
  /** Client id and secret of the mock client that every pod and the refresher use. */
  DAY_CLIENT_ID: string;
  DAY_CLIENT_SECRET: string;
  /** Key prefix of the token cache. */
  DAY_KEY_PREFIX: string;
  /** BullMQ queue name and key prefix of the renewal queue that the pod's cache adds jobs to. */
  DAY_QUEUE_NAME: string;
  DAY_QUEUE_PREFIX: string;
  /** The cache's `skewMs`. The pod keeps the default refresh-ahead margin, as the refresher does. */
  DAY_SKEW_MS: string;
  /** Pause after each round of the pod's loop, in milliseconds. */
  DAY_PAUSE_MS: string;
}

/** What each pod prints after `RESULT ` once SIGTERM has ended its loop. It holds no token. */
export interface DayPodResult {
  /** Rounds of the loop: one `getTokenInfo()` and one resource request each. */
  rounds: number;
  /**
   * Every `getTokenInfo()` of the pod by the source it reported, the ones that the authorized
   * fetch made for its requests included.
   */
  sources: Record<TokenSource, number>;
  /** Resource responses by HTTP status, such as `{ "200": 1800 }`, after the authorized fetch. */
  statuses: Record<string, number>;
  /** Resource responses with status 401 before the authorized fetch retried them. */
  unauthorizedAttempts: number;
  /** `refreshed` events with origin `local`: token requests that this pod sent. */
  localRefreshes: number;
  /** The `refreshed` events with origin `remote`, in order of arrival. */
  remoteRefreshes: Array<{ generation: number; reason: RefreshReason }>;
  /** Messages of the first 5 calls that rejected. `errorCount` counts them all. */
  errors: string[];
  errorCount: number;
}
