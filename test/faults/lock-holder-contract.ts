// What lock-holder-worker.ts prints and reports, shared with lock-holder.test.ts.

/** Printed when the worker sends its token request. */
export const TOKEN_REQUEST_LINE = 'sending token request';

/** Printed right before the worker stops itself with SIGSTOP. */
export const STOPPING_LINE = 'token response read, stopping';

/** The worker's RESULT. */
export interface LockHolderResult {
  /** SHA-256 of the token that getTokenInfo() returned. */
  tokenHash: string;
  generation: number;
  source: string;
  /** `refreshed` events with origin `local`: tokens this worker wrote to Redis. */
  localRefreshes: number;
  /** Whether the cache logged that its write was rejected by a newer generation. */
  writeFenced: boolean;
}
