import type { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { FleetLock } from './fleet-lock.js';
import type { TokenKeys } from './keys.js';
import type { MemoryEntry } from './memory-entry.js';
import type { CacheMetrics } from './metrics.js';
import type { ResolvedTokenCacheOptions } from './options.js';
import type { RedisTokenStore, StoredToken } from './redis-store.js';
import type { Sealer } from './seal.js';
import type { TokenCacheEvents } from './token-cache-types.js';
import type { TokenSubscription } from './token-subscription.js';

/** Result of one refresh flight, shared by every caller that joined it. */
export interface FlightResult {
  entry: MemoryEntry;
  source: 'redis' | 'upstream';
  /** True for a caller that joined a flight another caller started: the token request was not its own. */
  joined?: boolean;
}

/** Decides whether a stored token ends a refresh without a token request. */
export type AcceptStored = (entry: MemoryEntry, now: number) => boolean;

/** The parts of the token cache that its refresh protocol reads and updates. */
export interface RefreshHost {
  /** Returns the entry in memory, verified or not. */
  memory(): MemoryEntry | undefined;
  /** Stores `entry` in memory, verified when the subscription has not been lost since `epoch`. */
  remember(entry: MemoryEntry, epoch: number): void;
  /** Stores `entry` in memory unverified, so the next call reads Redis before it. */
  keepUnverified(entry: MemoryEntry): void;
  /** Opens a stored record; returns undefined for a record that is missing or unreadable. */
  entryFromStore(stored: StoredToken, now: number): MemoryEntry | undefined;
  /** Lets reads bring back a token hash that was invalidated, once the endpoint issued it again. */
  clearInvalidated(hash: string): void;
  /** Records a failed Redis command: memory is served alone until Redis responds again. */
  onRedisFailure(error: unknown): void;
  refreshAheadMs(lifetimeMs: number): number;
  /** Throws TokenCacheClosedError once close() has started. */
  assertOpen(): void;
  isClosed(): boolean;
}

/** Everything a token cache hands to its refresh protocol and token issuer. */
export interface RefreshContext {
  tokenId: string;
  options: ResolvedTokenCacheOptions;
  keys: TokenKeys;
  store: RedisTokenStore;
  lock: FleetLock;
  sealer: Sealer;
  subscription: TokenSubscription;
  logger: Logger;
  metrics: CacheMetrics | undefined;
  /** Random id of this cache in its `refreshed` messages, so it can skip its own. */
  senderId: string;
  /** Aborted by close() with a TokenCacheClosedError reason. */
  closeSignal: AbortSignal;
  /** The cache itself, which emits `refreshed` and `refreshFailed`. */
  events: EventEmitter<TokenCacheEvents>;
  host: RefreshHost;
}
