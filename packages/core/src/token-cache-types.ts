import type { EventEmitter } from 'node:events';

/** The layer in which `getTokenInfo()` found the token. */
export type TokenSource = 'memory' | 'redis' | 'upstream';

/** The reason a refresh ran. */
export type RefreshReason = 'missing' | 'refresh-ahead' | 'forced' | 'renewal' | 'invalidated';

/** A token and its metadata in the cache. */
export interface TokenInfo {
  /** The bearer token; never logged. */
  token: string;
  /** Life left before the cache stops handing it out (already less `skewMs`), in milliseconds. */
  remainingMs: number;
  /** The fencing generation that wrote the token; 0 for a token fetched while Redis was down. */
  generation: number;
  source: TokenSource;
}

/** Outcome of one renewal job run. */
export interface RenewResult {
  /**
   * `refreshed`: this run fetched and stored a new token. `fresh`: another delivery of the same
   * job already renewed it. `superseded`: a newer generation was written by another path, so this
   * job has nothing to do.
   */
  outcome: 'refreshed' | 'fresh' | 'superseded';
  /** The generation that Redis stores after the run. */
  generation: number;
  /** Life left of that generation's token, in milliseconds. */
  remainingMs: number;
}

/** A renewal job to add: one per token generation. */
export interface RenewalRequest {
  tokenId: string;
  generation: number;
  /** When the job should run, in milliseconds from now; may exceed 2^31-1. */
  delayMs: number;
  /** Life left of the token, in milliseconds; a renewal after this is overdue. */
  remainingMs: number;
}

/**
 * Adds renewal jobs. `@tokenfleet/refresher` provides the BullMQ implementation; a cache without
 * one relies on lazy refresh and the refresher's sweep.
 */
export interface RenewalScheduler {
  scheduleRenewal(request: RenewalRequest): Promise<void>;
}

/** Stored metadata of a token, without the token itself, for status output. */
export interface TokenStatus {
  tokenId: string;
  /** `label` of the provider that fetched the token. */
  label: string | undefined;
  /** Generation counter in Redis: the number of refresh attempts so far. */
  generationCounter: number;
  /** Generation of the stored token, or `undefined` when none is stored. */
  generation: number | undefined;
  /** PTTL of the stored record, in milliseconds, or `undefined` when none is stored. */
  remainingMs: number | undefined;
  /** Life the record was stored with (its PX at write time), in milliseconds. */
  lifetimeMs: number | undefined;
  /** Wall-clock time of the refresh that wrote the record (ms since epoch, informational). */
  refreshedAt: number | undefined;
  reason: RefreshReason | undefined;
  /** Cooldown left in milliseconds, 0 when none. */
  cooldownMs: number;
}

/** Payload of the `refreshed` event. */
export interface RefreshedEvent {
  generation: number;
  remainingMs: number;
  reason: RefreshReason;
  /** `local` when this cache fetched the token, `remote` when another pod announced it. */
  origin: 'local' | 'remote';
}

/** Payload of the `refreshFailed` event. */
export interface RefreshFailedEvent {
  reason: RefreshReason;
  err: Error;
}

/** Payload of the `degraded` event. */
export interface DegradedEvent {
  /** The failed component: `redis` when Redis could not be read or written. */
  cause: 'redis';
  err: Error;
}

/** Payload of the `invalidated` event. */
export interface InvalidatedEvent {
  origin: 'local' | 'remote';
}

export interface TokenCacheEvents {
  refreshed: [RefreshedEvent];
  refreshFailed: [RefreshFailedEvent];
  invalidated: [InvalidatedEvent];
  degraded: [DegradedEvent];
  closed: [];
}

/** A fleet-shared token for one provider. Create it with `createTokenCache()`. */
export interface TokenCache extends EventEmitter<TokenCacheEvents> {
  /** The token id: 32 hex characters of SHA-256 over the provider's identity. */
  readonly id: string;
  /** Returns a usable token, from memory, Redis or the token endpoint, in that order. */
  getToken(): Promise<string>;
  /** Like `getToken()`, with the remaining life, generation and source. */
  getTokenInfo(): Promise<TokenInfo>;
  /**
   * Deletes the stored token only while it is still `token`, and drops it from memory.
   * Returns true when Redis held that token and it was deleted.
   */
  invalidate(token: string): Promise<boolean>;
  /** Fetches a new token now, under the same single flight and fleet lock as any refresh. */
  refresh(): Promise<TokenInfo>;
  /** Runs the renewal of `generation`; called by the refresher's job processor. */
  renew(generation: number): Promise<RenewResult>;
  /**
   * The renewal margin of a token stored with `lifetimeMs` of life: the renewal job is due this
   * many milliseconds before the stored expiry (`options.refreshAheadMs`, kept below the life).
   */
  refreshAheadMs(lifetimeMs: number): number;
  /** Reads the stored metadata, without the token. */
  status(): Promise<TokenStatus>;
  /** Closes the connections this cache opened; a connection the caller passed stays open. */
  close(): Promise<void>;
}
