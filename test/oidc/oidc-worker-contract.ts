// What oidc-worker.ts and oidc-provider.test.ts agree on. It lives apart from the worker script
// because importing that script would run it.

/** Line that a worker prints when it waits for the start signal. */
export const READY_LINE = 'READY';

/** What each worker prints after `RESULT `. */
export interface OidcWorkerResult {
  /** SHA-256 (hex) of the token that the first call returned. */
  tokenHash: string;
  /** Number of different tokens among the calls; 1 when they all shared one. */
  distinctTokens: number;
  calls: number;
}
