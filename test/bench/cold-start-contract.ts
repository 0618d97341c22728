// What cold-start-worker.ts and cold-start.bench.ts agree on. It lives apart from the worker
// because importing the worker would run it.

/**
 * How a pod gets its token:
 * - `tokenfleet`: `createTokenCache()` with the Quiqup provider;
 * - `tokenfleet-joined`: the same cache behind one in-process promise that overlapping calls
 *   share, so a cold process sends one Redis read instead of one per caller. It shows what
 *   coalescing the read inside the cache would give;
 * - `oauth2-fetch`: `OAuth2Fetch` of @badgateway/oauth2-client, a per-process cache whose
 *   `getAccessToken()` joins one in-process refresh;
 * - `redis-no-lock`: a token shared through Redis with no lock and no single flight: every
 *   caller sends GET, and on a miss requests a token and sends SET with its lifetime.
 */
export type ColdStartVariant =
  | 'tokenfleet'
  | 'tokenfleet-joined'
  | 'oauth2-fetch'
  | 'redis-no-lock';

export type ColdStartCommand =
  /** Builds the variant's client with nothing cached under `keyPrefix`, then prints `prepared-<round>`. */
  | { type: 'prepare'; round: number; variant: ColdStartVariant; keyPrefix: string }
  /** Starts `callers` concurrent calls at `startAt`, then prints `round-<round>`. */
  | { type: 'go'; round: number; startAt: number; callers: number }
  /** Reports RESULT and exits. */
  | { type: 'exit' };

export interface PreparedReply {
  /** The token id of the tokenfleet cache, to check its subscription; absent for other variants. */
  tokenId?: string;
}

export interface RoundReply {
  /** Per caller: time from the start signal until the caller held a token, in milliseconds. */
  latenciesMs: number[];
  errorCount: number;
  /** Messages of the first errors, at most 3. */
  errors: string[];
  /** Distinct tokens that the callers got, as the first 12 hex characters of their SHA-256. */
  tokenHashes: string[];
}
