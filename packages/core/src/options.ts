import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { invalidArgument } from './errors.js';
import { LOCK_DRIFT_FACTOR } from './fleet-lock.js';
import type { TokenProvider } from './provider.js';
import { type SealingKey, validateSealingKeys } from './seal.js';
import { MAX_TIMER_DELAY_MS } from './timers.js';
import type { RenewalScheduler } from './token-cache-types.js';

/** A lifetime-dependent margin: takes the token's stored life in milliseconds, returns milliseconds. */
export type MarginFunction = (lifetimeMs: number) => number;

/** Retries of a refresh after a transient token endpoint fault (5xx, timeout, reset). */
export interface RetryOptions {
  /** Total attempts, the first included. Default 3; 1 disables retries. */
  attempts?: number;
  /** Back-off before the second attempt, in milliseconds, doubled each time. Default 250. */
  baseDelayMs?: number;
  /** Upper bound of one back-off, in milliseconds. Default 5000. */
  maxDelayMs?: number;
}

export interface TokenCacheOptions {
  /** An ioredis `Redis` or `Cluster` that the caller owns, or a `redis://` / `rediss://` URL. */
  redis: Redis | Cluster | string;
  /** Sends the token requests: `quiqup()` or `oauth2ClientCredentials()`. */
  provider: TokenProvider;
  /** Prefix of every Redis key. Default `tokenfleet`. */
  keyPrefix?: string;
  /**
   * Margin, in milliseconds, by which the stored life is shorter than the endpoint's
   * `expires_in`, so that a token is never sent in its last moments. Default 60000. It never
   * exceeds half the token's life: a 30 s token keeps 15 s. 0 disables the margin.
   */
  skewMs?: number;
  /**
   * How long before the stored expiry a refresh starts while callers keep the current token, in
   * milliseconds, or a function of the stored life. Default: 20% of the life, at most one hour
   * (11.8 minutes for a 1-hour staging token stored for 59 minutes, 1 hour for a 7-day
   * production token). 0 disables
   * refresh ahead; renewal jobs then run at expiry.
   */
  refreshAheadMs?: number | MarginFunction;
  /**
   * TTL of the fleet refresh lock, in milliseconds. Default 30000. After Redlock's clock drift
   * allowance (1% of the TTL plus 2 ms) it must still exceed `requestTimeoutMs` by at least
   * 500 ms, so that a token request never outlives the lock. For a 5000 ms request timeout the
   * smallest valid value is 5558.
   */
  lockTtlMs?: number;
  /** Timeout of one token request, in milliseconds. Default 10000. */
  requestTimeoutMs?: number;
  /**
   * How long a pod waits for another pod's refresh before it raises `LockTimeoutError`, in
   * milliseconds. Default: `lockTtlMs` + `requestTimeoutMs`, enough for one dead lock holder.
   */
  lockWaitTimeoutMs?: number;
  /** Timeout of every Redis command this cache sends, in milliseconds. Default 2000. */
  redisTimeoutMs?: number;
  /**
   * Fleet-wide back-off after the endpoint rejected the client (400 or 401), in milliseconds.
   * Default 60000. 0 disables it.
   */
  rejectedClientCooldownMs?: number;
  /** Retries of transient token endpoint faults within one refresh. */
  retry?: RetryOptions;
  /**
   * Keys that seal the stored token with AES-256-GCM. The first seals; all are tried to open.
   * Default: one key derived with HKDF-SHA256 from the provider's client secret.
   */
  sealingKeys?: SealingKey[];
  /** Adds a renewal job after each refresh; see `createRenewalQueue()` in `@tokenfleet/refresher`. */
  renewal?: RenewalScheduler;
  /** pino logger; the cache logs through `logger.child({ component: 'token-cache' })`. Default: silent. */
  logger?: Logger;
  /** prom-client registry for the cache's metrics. Default: no metrics. */
  metricsRegistry?: Registry;
}

/** Defaults of every optional setting of `createTokenCache()`. */
export const DEFAULT_TOKEN_CACHE_OPTIONS = Object.freeze({
  keyPrefix: 'tokenfleet',
  skewMs: 60_000,
  refreshAheadMs: defaultRefreshAheadMs as MarginFunction,
  lockTtlMs: 30_000,
  requestTimeoutMs: 10_000,
  redisTimeoutMs: 2_000,
  rejectedClientCooldownMs: 60_000,
  retry: Object.freeze({ attempts: 3, baseDelayMs: 250, maxDelayMs: 5_000 }),
});

/**
 * Lock validity, in milliseconds, that must remain beyond `requestTimeoutMs` once Redlock's drift
 * allowance is taken off `lockTtlMs`: it covers the round trips to take and check the lock.
 * `lockTtlMs` = `requestTimeoutMs` + 1000 meets it for any lock TTL up to about 49 s.
 */
export const MIN_LOCK_MARGIN_MS = 500;

/** Milliseconds that Redlock adds to its drift allowance for the 1 ms precision of Redis expiry. */
const LOCK_DRIFT_EXTRA_MS = 2;

/** Share of a token's stored life that the default refresh-ahead margin takes. */
const DEFAULT_REFRESH_AHEAD_SHARE = 0.2;

/** Cap of the default refresh-ahead margin: an hour is enough to ride out an endpoint outage. */
const DEFAULT_REFRESH_AHEAD_MAX_MS = 3_600_000;

/** Returns the default refresh-ahead margin for a token with `lifetimeMs` of stored life. */
export function defaultRefreshAheadMs(lifetimeMs: number): number {
  return Math.min(
    Math.floor(lifetimeMs * DEFAULT_REFRESH_AHEAD_SHARE),
    DEFAULT_REFRESH_AHEAD_MAX_MS,
  );
}

/** Options with every default filled in and every value checked. */
export interface ResolvedTokenCacheOptions {
  redis: Redis | Cluster | string;
  provider: TokenProvider;
  keyPrefix: string;
  skewMs: number;
  refreshAheadMs: MarginFunction;
  lockTtlMs: number;
  requestTimeoutMs: number;
  lockWaitTimeoutMs: number;
  redisTimeoutMs: number;
  rejectedClientCooldownMs: number;
  retry: Required<RetryOptions>;
  sealingKeys: SealingKey[] | undefined;
  renewal: RenewalScheduler | undefined;
  logger: Logger | undefined;
  metricsRegistry: Registry | undefined;
}

/** Checks the caller's options and returns a new object with the defaults filled in. */
export function resolveTokenCacheOptions(options: TokenCacheOptions): ResolvedTokenCacheOptions {
  if (options === null || typeof options !== 'object') {
    throw invalidArgType('options', 'an object', options);
  }
  if (
    typeof options.redis !== 'string' &&
    (options.redis === null || typeof options.redis !== 'object')
  ) {
    throw invalidArgType('options.redis', 'an ioredis client or a redis:// URL', options.redis);
  }
  if (!options.provider || typeof options.provider.requestToken !== 'function') {
    throw invalidArgType('options.provider', 'a token provider such as quiqup()', options.provider);
  }
  assertOptionalObjects(options);

  const defaults = DEFAULT_TOKEN_CACHE_OPTIONS;
  const keyPrefix = options.keyPrefix ?? defaults.keyPrefix;
  if (typeof keyPrefix !== 'string' || keyPrefix.length === 0 || /[{}\s]/.test(keyPrefix)) {
    throw invalidArgValue(
      'options.keyPrefix',
      'a non-empty string without braces or spaces',
      keyPrefix,
    );
  }

  const skewMs = nonNegativeDelayMs('options.skewMs', options.skewMs, defaults.skewMs);
  const requestTimeoutMs = positiveDelayMs(
    'options.requestTimeoutMs',
    options.requestTimeoutMs,
    defaults.requestTimeoutMs,
  );
  const lockTtlMs = positiveDelayMs('options.lockTtlMs', options.lockTtlMs, defaults.lockTtlMs);
  assertLockOutlivesRequest(lockTtlMs, requestTimeoutMs);
  const lockWaitTimeoutMs = positiveDelayMs(
    'options.lockWaitTimeoutMs',
    options.lockWaitTimeoutMs,
    Math.min(lockTtlMs + requestTimeoutMs, MAX_TIMER_DELAY_MS),
  );
  const redisTimeoutMs = positiveDelayMs(
    'options.redisTimeoutMs',
    options.redisTimeoutMs,
    defaults.redisTimeoutMs,
  );
  const rejectedClientCooldownMs = nonNegativeDelayMs(
    'options.rejectedClientCooldownMs',
    options.rejectedClientCooldownMs,
    defaults.rejectedClientCooldownMs,
  );

  return {
    redis: options.redis,
    provider: options.provider,
    keyPrefix,
    skewMs,
    refreshAheadMs: resolveRefreshAhead(options.refreshAheadMs),
    lockTtlMs,
    requestTimeoutMs,
    lockWaitTimeoutMs,
    redisTimeoutMs,
    rejectedClientCooldownMs,
    retry: resolveRetry(options.retry),
    sealingKeys: resolveSealingKeys(options.sealingKeys),
    renewal: options.renewal,
    logger: options.logger,
    metricsRegistry: options.metricsRegistry,
  };
}

/**
 * Checks the options that must be objects of a given shape when they are set. A wrong one would
 * otherwise fail later, in a background step, with an error that does not name the option.
 */
function assertOptionalObjects(options: TokenCacheOptions): void {
  const { retry, renewal, metricsRegistry } = options;
  if (retry !== undefined && (retry === null || typeof retry !== 'object')) {
    throw invalidArgType('options.retry', 'an object', retry);
  }
  if (renewal !== undefined && typeof renewal?.scheduleRenewal !== 'function') {
    throw invalidArgType(
      'options.renewal',
      'an object with a scheduleRenewal() method, such as createRenewalQueue()',
      renewal,
    );
  }
  if (
    metricsRegistry !== undefined &&
    (typeof metricsRegistry?.registerMetric !== 'function' ||
      typeof metricsRegistry.getSingleMetric !== 'function')
  ) {
    throw invalidArgType('options.metricsRegistry', 'a prom-client Registry', metricsRegistry);
  }
}

/**
 * Throws unless the lock still has `MIN_LOCK_MARGIN_MS` beyond `requestTimeoutMs` after Redlock's
 * drift allowance. Redlock 5.0.0-beta.2 rounds the allowance, and rounding up here never
 * overestimates the validity it leaves.
 */
function assertLockOutlivesRequest(lockTtlMs: number, requestTimeoutMs: number): void {
  const requiredMs = requestTimeoutMs + MIN_LOCK_MARGIN_MS;
  if (lockValidityMs(lockTtlMs) >= requiredMs) {
    return;
  }

  const smallestTtlMs = smallestLockTtlMs(requiredMs);
  const reason = `exceeds options.requestTimeoutMs by ${MIN_LOCK_MARGIN_MS} ms after Redlock's clock drift allowance of ${LOCK_DRIFT_FACTOR * 100}% + ${LOCK_DRIFT_EXTRA_MS} ms`;
  if (smallestTtlMs > MAX_TIMER_DELAY_MS) {
    const longestRequestMs = lockValidityMs(MAX_TIMER_DELAY_MS) - MIN_LOCK_MARGIN_MS;
    throw invalidArgValue(
      'options.requestTimeoutMs',
      `at most ${longestRequestMs}, so that an options.lockTtlMs of at most ${MAX_TIMER_DELAY_MS} ${reason}`,
      requestTimeoutMs,
    );
  }
  throw invalidArgValue(
    'options.lockTtlMs',
    `at least ${smallestTtlMs}, so that it ${reason}`,
    lockTtlMs,
  );
}

/** Validity that Redlock grants a lock of `lockTtlMs`, in milliseconds, before any round trip. */
function lockValidityMs(lockTtlMs: number): number {
  return lockTtlMs - Math.ceil(lockTtlMs * LOCK_DRIFT_FACTOR) - LOCK_DRIFT_EXTRA_MS;
}

/** Returns the smallest lock TTL whose validity is at least `requiredMs`. */
function smallestLockTtlMs(requiredMs: number): number {
  // The estimate lands within a millisecond or two of the result because lockValidityMs only
  // rounds, and both loops walk the rest of the way.
  let ttlMs = Math.ceil((requiredMs + LOCK_DRIFT_EXTRA_MS) / (1 - LOCK_DRIFT_FACTOR));
  while (lockValidityMs(ttlMs - 1) >= requiredMs) {
    ttlMs -= 1;
  }
  while (lockValidityMs(ttlMs) < requiredMs) {
    ttlMs += 1;
  }
  return ttlMs;
}

function resolveRefreshAhead(value: number | MarginFunction | undefined): MarginFunction {
  if (value === undefined) {
    return DEFAULT_TOKEN_CACHE_OPTIONS.refreshAheadMs;
  }
  if (typeof value === 'function') {
    return value;
  }
  if (typeof value !== 'number') {
    throw invalidArgType(
      'options.refreshAheadMs',
      'a number of milliseconds or a function of the stored life',
      value,
    );
  }
  const fixedMs = nonNegativeDelayMs('options.refreshAheadMs', value, 0);
  return () => fixedMs;
}

function resolveRetry(retry: RetryOptions | undefined): Required<RetryOptions> {
  const defaults = DEFAULT_TOKEN_CACHE_OPTIONS.retry;
  const attempts = positiveInteger('options.retry.attempts', retry?.attempts, defaults.attempts);
  const baseDelayMs = nonNegativeDelayMs(
    'options.retry.baseDelayMs',
    retry?.baseDelayMs,
    defaults.baseDelayMs,
  );
  const maxDelayMs = nonNegativeDelayMs(
    'options.retry.maxDelayMs',
    retry?.maxDelayMs,
    defaults.maxDelayMs,
  );
  return { attempts, baseDelayMs, maxDelayMs };
}

function resolveSealingKeys(keys: SealingKey[] | undefined): SealingKey[] | undefined {
  if (keys === undefined) {
    return undefined;
  }
  validateSealingKeys(keys, 'options.sealingKeys');
  return [...keys];
}

function nonNegativeInteger(path: string, value: number | undefined, fallback: number): number {
  if (value === undefined) {
    return fallback;
  }
  if (typeof value !== 'number') {
    throw invalidArgType(path, 'a number', value);
  }
  if (!Number.isSafeInteger(value) || value < 0) {
    throw invalidArgValue(path, 'a non-negative integer', value);
  }
  return value;
}

function positiveInteger(path: string, value: number | undefined, fallback: number): number {
  const resolved = nonNegativeInteger(path, value, fallback);
  if (resolved === 0) {
    throw invalidArgValue(path, 'a positive integer', value);
  }
  return resolved;
}

/** Resolves a delay that a Node.js timer can wait for: 0 to `MAX_TIMER_DELAY_MS` ms. */
function nonNegativeDelayMs(path: string, value: number | undefined, fallback: number): number {
  return assertTimerDelay(path, nonNegativeInteger(path, value, fallback));
}

/** Resolves a delay that a Node.js timer can wait for: 1 to `MAX_TIMER_DELAY_MS` ms. */
function positiveDelayMs(path: string, value: number | undefined, fallback: number): number {
  return assertTimerDelay(path, positiveInteger(path, value, fallback));
}

function assertTimerDelay(path: string, delayMs: number): number {
  // Node.js replaces a longer timer delay with 1 ms, so the wait would end at once.
  if (delayMs > MAX_TIMER_DELAY_MS) {
    throw invalidArgValue(
      path,
      `at most ${MAX_TIMER_DELAY_MS} (2^31 - 1 ms, the longest delay of a Node.js timer)`,
      delayMs,
    );
  }
  return delayMs;
}

/** Creates the `ERR_INVALID_ARG_TYPE` error for option `path`. */
export function invalidArgType(path: string, expected: string, actual: unknown): TypeError {
  return invalidArgument(
    'ERR_INVALID_ARG_TYPE',
    `"${path}" must be ${expected}, received ${describe(actual)}`,
  );
}

/** Creates the `ERR_INVALID_ARG_VALUE` error for option `path`. */
export function invalidArgValue(path: string, expected: string, actual: unknown): TypeError {
  return invalidArgument(
    'ERR_INVALID_ARG_VALUE',
    `"${path}" must be ${expected}, received ${describe(actual)}`,
  );
}

function describe(value: unknown): string {
  if (value === null) {
    return 'null';
  }
  if (typeof value === 'number' || typeof value === 'boolean') {
    return String(value);
  }
  if (typeof value === 'string') {
    return `a string of length ${value.length}`;
  }
  return `type ${typeof value}`;
}
