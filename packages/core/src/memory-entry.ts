import type { TokenInfo } from './token-cache-types.js';
import type { TokenRecord } from './token-record.js';

/**
 * Time before refresh ahead is due from which getToken() reads the clock on every call again. The
 * timer that ends the clock-free stretch may fire up to this late without harm (see getToken).
 */
export const HOT_PATH_GUARD_MS = 1_000;

/** In the clock-free stretch, one getToken() call in this many (a power of two) reads the clock. */
export const HOT_PATH_CLOCK_EVERY = 64;

/** A token held in this process, with deadlines on the local monotonic clock. */
export interface MemoryEntry {
  token: string;
  hash: string;
  generation: number;
  /** Monotonic time after which the token is never handed out. */
  deadline: number;
  /** Monotonic time at which the renewal job should have run. */
  renewalDueAt: number;
  /** Monotonic time from which callers start a background refresh themselves. */
  refreshAheadAt: number;
  record: TokenRecord | undefined;
  /** The token as a resolved promise, handed to every caller so the hot path allocates nothing. */
  promise: Promise<string>;
  /** Monotonic time until which getToken() may skip the clock: `refreshAheadAt` less the guard. */
  hotUntil: number;
  /** Whether getToken() skips the clock: set by a reading before `hotUntil`, cleared by a timer. */
  hot: boolean;
}

/**
 * Builds the memory entry for `token` with `remainingMs` of life from `now`. `refreshAheadMs`
 * returns the renewal margin for the record's stored life.
 */
export function buildMemoryEntry(
  token: string,
  record: TokenRecord,
  remainingMs: number,
  now: number,
  refreshAheadMs: (lifetimeMs: number) => number,
): MemoryEntry {
  const deadline = now + remainingMs;
  // A token that came back unchanged gets no refresh ahead: it is asked for again at its end.
  const aheadMs = record.same ? 0 : refreshAheadMs(record.l);
  const renewalDueAt = deadline - aheadMs;
  // Pods step in at half the margin, so a running refresher renews first.
  const refreshAheadAt = deadline - aheadMs / 2;
  return {
    token,
    hash: record.h,
    generation: record.g,
    deadline,
    renewalDueAt,
    refreshAheadAt,
    record,
    promise: Promise.resolve(token),
    hotUntil: refreshAheadAt - HOT_PATH_GUARD_MS,
    hot: false,
  };
}

export function toInfo(entry: MemoryEntry, source: TokenInfo['source'], now: number): TokenInfo {
  return {
    token: entry.token,
    remainingMs: Math.max(0, Math.round(entry.deadline - now)),
    generation: entry.generation,
    source,
  };
}

/** Keeps a caller's margin inside the token's life: a margin as long as the life would loop. */
export function clampMargin(marginMs: number, lifetimeMs: number): number {
  if (!Number.isFinite(marginMs) || marginMs <= 0) {
    return 0;
  }
  return Math.min(marginMs, lifetimeMs * 0.9);
}
