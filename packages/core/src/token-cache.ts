import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { type Cluster, Redis } from 'ioredis';
import { type Logger, pino } from 'pino';
import {
  ClientRejectedError,
  InvalidTokenResponseError,
  LockTimeoutError,
  RateLimitedError,
  TokenCacheClosedError,
  TokenEndpointError,
  type TokenfleetError,
} from './errors.js';
import { createRedlockFleetLock, type FleetLock, type LockLease } from './fleet-lock.js';
import { readTokenStatus } from './inspect-tokens.js';
import { buildTokenKeys, computeTokenId, hashToken, type TokenKeys } from './keys.js';
import { cooldownError, encodeCooldown, reusedLifetimeMs, storedLifetimeMs } from './lifetime.js';
import { type CacheMetrics, type CacheMetricsSource, cacheMetricsFor } from './metrics.js';
import {
  type ResolvedTokenCacheOptions,
  resolveTokenCacheOptions,
  type TokenCacheOptions,
} from './options.js';
import type { TokenGrant } from './provider.js';
import {
  RedisTokenStore,
  RedisUnavailableError,
  type StoredToken,
  sanitizeRedisError,
} from './redis-store.js';
import { createSealer, deriveSealingKey, type Sealer } from './seal.js';
import { MAX_TIMER_DELAY_MS, sleep } from './timers.js';
import type {
  RefreshReason,
  RenewResult,
  TokenCache,
  TokenCacheEvents,
  TokenInfo,
  TokenStatus,
} from './token-cache-types.js';
import { decodeTokenRecord, encodeTokenRecord, type TokenRecord } from './token-record.js';
import { TokenSubscription } from './token-subscription.js';
import { findGrantProblem } from './wire.js';

/** After a failed Redis command, how long the cache serves from memory before it asks Redis again. */
const REDIS_RETRY_INTERVAL_MS = 1_000;

/** Longest single wait for another pod's refresh before the lock and Redis are checked again. */
const LOCK_CHECK_INTERVAL_MS = 2_000;

/** Fleet-wide back-off after a response that was not a usable token, so a bad endpoint is not hammered. */
const INVALID_RESPONSE_COOLDOWN_MS = 5_000;

/**
 * `expires_in` counts seconds, usually whole ones, so a reused token's real end may come up to
 * this long after the stated one.
 */
const EXPIRES_IN_RESOLUTION_MS = 1_000;

/** Shortest fleet cooldown after a 429: `Retry-After` counts whole seconds, so 0 is under a second. */
const MIN_RATE_LIMIT_COOLDOWN_MS = 1_000;

/**
 * How long an invalidated token stays refused in this process: longer than any read that may
 * still carry it (a read is bounded by redisTimeoutMs).
 */
const INVALIDATED_TOKEN_MEMORY_MS = 10 * 60_000;

/** First back-off after a failed background refresh, doubled up to `retry.maxDelayMs`. */
const BACKGROUND_RETRY_BASE_MS = 1_000;

/**
 * Time before refresh ahead is due from which getToken() reads the clock on every call again. The
 * timer that ends the clock-free stretch may fire up to this late without harm (see getToken).
 */
const HOT_PATH_GUARD_MS = 1_000;

/** In the clock-free stretch, one getToken() call in this many (a power of two) reads the clock. */
const HOT_PATH_CLOCK_EVERY = 64;

/** Errors whose cooldown is already set, so the retry loop does not set another. */
const cooledDown = new WeakSet<object>();

/**
 * Redis clients that already carry a cache's error listener. Caches that share a client add one
 * listener in all, because Node warns once an event has more than 10 listeners, and a listener per
 * cache would stay on the caller's client after the cache closed.
 */
const clientsWithErrorListener = new WeakSet<Redis | Cluster>();

/** A write lost to a newer attempt that stored nothing: the flight starts over. */
class FencedWriteError extends TokenEndpointError {
  constructor(newerGeneration: number) {
    super(`token write lost to generation ${newerGeneration}, which has stored no token yet`);
  }
}

/** A token held in this process, with deadlines on the local monotonic clock. */
interface MemoryEntry {
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

/** Result of one refresh flight, shared by every caller that joined it. */
interface FlightResult {
  entry: MemoryEntry;
  source: 'redis' | 'upstream';
  /** True for a caller that joined a flight another caller started: the token request was not its own. */
  joined?: boolean;
}

/** Decides whether a stored token ends a refresh without a token request. */
type AcceptStored = (entry: MemoryEntry, now: number) => boolean;

/**
 * Creates a fleet-shared token cache for one provider. Connections made from a URL are owned and
 * closed by `close()`; a client passed in stays open.
 */
export function createTokenCache(options: TokenCacheOptions): TokenCache {
  return new FleetTokenCache(resolveTokenCacheOptions(options));
}

class FleetTokenCache extends EventEmitter<TokenCacheEvents> implements TokenCache {
  readonly id: string;

  readonly #options: ResolvedTokenCacheOptions;
  readonly #keys: TokenKeys;
  readonly #redis: Redis | Cluster;
  readonly #ownsRedis: boolean;
  readonly #store: RedisTokenStore;
  readonly #lock: FleetLock;
  readonly #sealer: Sealer;
  readonly #subscription: TokenSubscription;
  readonly #logger: Logger;
  readonly #metrics: CacheMetrics | undefined;
  readonly #closeController = new AbortController();
  readonly #metricsSource: CacheMetricsSource;

  #memory: MemoryEntry | undefined;
  #memoryVerified = false;
  #memoryHits = 0;
  #flight: Promise<FlightResult> | undefined;
  readonly #pendingReleases = new Set<Promise<void>>();
  #backgroundRefresh: Promise<void> | undefined;
  #nextBackgroundAttemptAt = 0;
  #backgroundFailures = 0;
  #redisRetryAt = 0;
  #degraded = false;
  #redisProbe: Promise<void> | undefined;
  #pendingRead: Promise<StoredToken> | undefined;
  /** The last cooldown this pod started, kept in memory too so that it applies while Redis is down. */
  #localCooldown: { until: number; value: string } | undefined;
  /** Hashes of invalidated tokens, with the monotonic time until which no read may bring them back. */
  readonly #invalidatedHashes = new Map<string, number>();
  readonly #pendingRenewals = new Set<Promise<void>>();
  #overdueWarnedGeneration = -1;
  #closed = false;

  constructor(options: ResolvedTokenCacheOptions) {
    super();
    this.#options = options;
    this.id = computeTokenId(options.provider.identity);
    this.#keys = buildTokenKeys(options.keyPrefix, this.id);
    this.#logger = (options.logger ?? pino({ level: 'silent' })).child({
      component: 'token-cache',
      tokenId: this.id,
    });

    if (typeof options.redis === 'string') {
      this.#redis = new Redis(options.redis, {
        maxRetriesPerRequest: 1,
        commandTimeout: options.redisTimeoutMs,
        connectTimeout: options.redisTimeoutMs,
      });
      this.#ownsRedis = true;
    } else {
      this.#redis = options.redis;
      this.#ownsRedis = false;
    }
    // A connection error is reported through failed commands; without a listener ioredis would
    // print every reconnect attempt.
    if (!clientsWithErrorListener.has(this.#redis)) {
      clientsWithErrorListener.add(this.#redis);
      const connectionLogger = (options.logger ?? pino({ level: 'silent' })).child({
        component: 'token-cache',
      });
      this.#redis.on('error', (err: Error) => {
        connectionLogger.debug({ err: sanitizeRedisError(err) }, 'redis connection error');
      });
    }

    this.#store = new RedisTokenStore(this.#redis, this.#keys, options.redisTimeoutMs);
    this.#lock = createRedlockFleetLock([this.#redis], options.redisTimeoutMs);
    this.#sealer = createSealer(
      options.sealingKeys ?? [deriveSealingKey(options.provider.sealingSecret, this.id)],
    );
    this.#subscription = new TokenSubscription({
      redis: this.#redis,
      channel: this.#keys.events,
      logger: this.#logger,
      onMessage: (message) => this.#onMessage(message),
      onResubscribed: () => {
        // Messages may have been missed while the subscriber was away: read Redis before memory.
        this.#memoryVerified = false;
      },
    });

    this.#metricsSource = {
      tokenId: this.id,
      memoryHits: () => this.#memoryHits,
      remainingMs: () => this.#memory && this.#memory.deadline - performance.now(),
      renewalOverdueMs: () => {
        const entry = this.#memory;
        const now = performance.now();
        return entry === undefined || now < entry.renewalDueAt ? 0 : now - entry.renewalDueAt;
      },
      degraded: () => this.#degraded,
    };
    if (options.metricsRegistry) {
      this.#metrics = cacheMetricsFor(options.metricsRegistry);
      this.#metrics.add(this.#metricsSource);
    }
  }

  getToken(): Promise<string> {
    // The hot path: no I/O and no allocation. A clock reading costs about as much as the rest of
    // the call, so most calls skip it while the entry is hot. A timer ends the hot stretch
    // HOT_PATH_GUARD_MS before refresh ahead is due. Every 64th call reads the clock anyway,
    // because a long run of microtasks can keep that timer from firing.
    const entry = this.#memory;
    if (entry !== undefined && this.#memoryVerified && !this.#closed) {
      if (entry.hot && (this.#memoryHits & (HOT_PATH_CLOCK_EVERY - 1)) !== 0) {
        this.#memoryHits += 1;
        return entry.promise;
      }
      const now = performance.now();
      if (now < entry.hotUntil) {
        this.#keepHot(entry, now);
      } else {
        entry.hot = false;
      }
      if (now < entry.deadline) {
        this.#memoryHits += 1;
        if (now >= entry.refreshAheadAt) {
          this.#refreshAheadInBackground(entry, now);
        }
        return entry.promise;
      }
    }
    return this.#getTokenSlow().then((info) => info.token);
  }

  /** Marks `entry` hot and arms the timer that clears the mark at `entry.hotUntil`. */
  #keepHot(entry: MemoryEntry, now: number): void {
    if (entry.hot) {
      return;
    }
    entry.hot = true;
    // A timer capped below the real wait fires early; the next clock reading marks the entry again.
    const timer = setTimeout(
      () => {
        entry.hot = false;
      },
      Math.min(entry.hotUntil - now, MAX_TIMER_DELAY_MS),
    );
    timer.unref();
  }

  async getTokenInfo(): Promise<TokenInfo> {
    const entry = this.#memory;
    const now = performance.now();
    if (entry !== undefined && this.#memoryVerified && !this.#closed && now < entry.deadline) {
      this.#memoryHits += 1;
      if (now >= entry.refreshAheadAt) {
        this.#refreshAheadInBackground(entry, now);
      }
      return toInfo(entry, 'memory', now);
    }
    return this.#getTokenSlow();
  }

  async invalidate(token: string): Promise<boolean> {
    this.#assertOpen();
    if (typeof token !== 'string' || token.length === 0) {
      throw Object.assign(new TypeError('"token" must be a non-empty string'), {
        code: 'ERR_INVALID_ARG_TYPE',
      });
    }

    const hash = hashToken(token);
    this.#forgetToken(hash);

    let deleted = false;
    try {
      deleted = await this.#store.deleteIfHash(
        hash,
        JSON.stringify({ type: 'invalidated', h: hash }),
      );
    } catch (error) {
      this.#onRedisFailure(error);
    }
    this.#logger.info({ deleted }, 'token invalidated');
    this.emit('invalidated', { origin: 'local' });
    return deleted;
  }

  async refresh(): Promise<TokenInfo> {
    this.#assertOpen();
    // Only a refresh that starts after this call counts: its generation is above the counter now.
    let seenGeneration = this.#memory?.generation ?? 0;
    try {
      seenGeneration = Math.max(seenGeneration, await this.#store.currentGeneration());
    } catch (error) {
      this.#onRedisFailure(error);
    }
    const result = await this.#joinFlight('forced', (entry) => entry.generation > seenGeneration);
    return toInfo(result.entry, result.source, performance.now());
  }

  async renew(generation: number): Promise<RenewResult> {
    this.#assertOpen();
    if (!Number.isSafeInteger(generation) || generation < 0) {
      throw Object.assign(new TypeError('"generation" must be a non-negative integer'), {
        code: 'ERR_INVALID_ARG_VALUE',
      });
    }

    const result = await this.#joinFlight(
      'renewal',
      (entry) => entry.generation > generation,
      generation,
    );
    const entry = result.entry;
    const remainingMs = Math.max(0, Math.round(entry.deadline - performance.now()));
    let outcome: RenewResult['outcome'] = 'superseded';
    // A second delivery of the job that joined the first one's flight did not send the request.
    if (result.source === 'upstream' && result.joined !== true) {
      outcome = 'refreshed';
    } else if (entry.record?.r === 'renewal' && entry.record.rg === generation) {
      outcome = 'fresh';
    }
    return { outcome, generation: entry.generation, remainingMs };
  }

  async status(): Promise<TokenStatus> {
    this.#assertOpen();
    return readTokenStatus(this.#store, this.id, this.#options.provider.label);
  }

  /** Returns the renewal margin of a token with `lifetimeMs` of stored life, in milliseconds. */
  refreshAheadMs(lifetimeMs: number): number {
    return clampMargin(this.#options.refreshAheadMs(lifetimeMs), lifetimeMs);
  }

  async close(): Promise<void> {
    if (this.#closed) {
      return;
    }
    this.#closed = true;
    // The reason reaches callers whose refresh it cuts short (the providers rethrow a tokenfleet
    // error reason as it is), so they see TOKENFLEET_CLOSED instead of a bare AbortError.
    this.#closeController.abort(new TokenCacheClosedError());
    this.#metrics?.remove(this.#metricsSource);

    await Promise.allSettled([this.#flight, this.#backgroundRefresh]);
    await Promise.allSettled(this.#pendingReleases);
    await Promise.race([
      Promise.allSettled(this.#pendingRenewals),
      sleep(this.#options.redisTimeoutMs, undefined, { unref: true }),
    ]);
    await this.#redisProbe;
    await this.#subscription.close();
    if (this.#ownsRedis) {
      await this.#redis.quit().catch(() => this.#redis.disconnect());
    }
    this.#logger.debug('token cache closed');
    this.emit('closed');
  }

  // ---- reading -------------------------------------------------------------------------------

  async #getTokenSlow(): Promise<TokenInfo> {
    this.#assertOpen();
    const now = performance.now();
    const memory = this.#memory;

    // While Redis is failing, a usable token in memory is served at once and one background
    // read finds out when Redis is back, so no caller waits for a frozen Redis.
    if (this.#degraded && memory !== undefined && now < memory.deadline) {
      if (now >= this.#redisRetryAt) {
        this.#probeRedis();
      }
      return this.#serveWithoutRedis(memory, now);
    }
    if (now < this.#redisRetryAt) {
      return this.#serveWithoutRedis(memory, now);
    }

    const epoch = this.#subscription.epoch;
    let stored: StoredToken;
    try {
      stored = await this.#readShared();
    } catch (error) {
      this.#onRedisFailure(error);
      // Read memory again: a flight may have filled it while the read waited for its timeout.
      return this.#serveWithoutRedis(this.#memory, performance.now());
    }
    this.#onRedisSuccess();

    const readAt = performance.now();
    const entry = this.#entryFromStore(stored, readAt);
    if (entry !== undefined) {
      this.#remember(entry, epoch);
      this.#metrics?.countHit(this.id, 'redis');
      if (readAt >= entry.refreshAheadAt) {
        this.#refreshAheadInBackground(entry, readAt);
      }
      return toInfo(entry, 'redis', readAt);
    }

    if (stored.cooldown !== undefined && stored.cooldownPttlMs > 0) {
      throw cooldownError(stored.cooldown, stored.cooldownPttlMs);
    }

    const result = await this.#joinFlight('missing', () => true);
    this.#countFlightHit(result);
    return toInfo(result.entry, result.source, performance.now());
  }

  /** Serves the in-process token while Redis is down, or fetches one without the fleet lock. */
  async #serveWithoutRedis(memory: MemoryEntry | undefined, now: number): Promise<TokenInfo> {
    if (memory !== undefined && now < memory.deadline) {
      this.#memoryHits += 1;
      return toInfo(memory, 'memory', now);
    }
    const result = await this.#joinFlight('missing', () => true);
    this.#countFlightHit(result);
    return toInfo(result.entry, result.source, performance.now());
  }

  /** Opens a stored record; a record that does not decode or unseal is a cache miss. */
  #entryFromStore(stored: StoredToken, now: number): MemoryEntry | undefined {
    if (stored.value === undefined || stored.pttlMs <= 0) {
      return undefined;
    }
    const record = decodeTokenRecord(stored.value);
    const token = record === undefined ? undefined : this.#sealer.open(record.s);
    if (record === undefined || token === undefined || hashToken(token) !== record.h) {
      this.#logger.warn('stored token record is unreadable, treating it as missing');
      return undefined;
    }
    if (this.#isInvalidated(record.h, now)) {
      // A read answered after invalidate() may still carry the token it deleted.
      return undefined;
    }
    // The PTTL was read at some point of the round trip; counting from its start keeps the
    // deadline on the safe side.
    const base = stored.readStartedAt === undefined ? now : Math.min(now, stored.readStartedAt);
    return this.#buildEntry(token, record, stored.pttlMs, base);
  }

  #buildEntry(token: string, record: TokenRecord, remainingMs: number, now: number): MemoryEntry {
    const deadline = now + remainingMs;
    // A token that came back unchanged gets no refresh ahead: it is asked for again at its end.
    const aheadMs = record.same ? 0 : this.refreshAheadMs(record.l);
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

  #remember(entry: MemoryEntry, epoch: number): void {
    const current = this.#memory;
    // A verified newer generation in memory wins over a read that started before it arrived.
    // Unverified memory yields: after a Redis restart the generation counter starts again at 1.
    const keepCurrent =
      current !== undefined &&
      this.#memoryVerified &&
      current.generation > entry.generation &&
      current.deadline > performance.now();
    if (!keepCurrent) {
      this.#memory = entry;
    }
    this.#memoryVerified = this.#subscription.isSubscribedAt(epoch);
  }

  // ---- refreshing ----------------------------------------------------------------------------

  /** Joins the running refresh of this process, or starts one. */
  async #joinFlight(
    reason: RefreshReason,
    accept: AcceptStored,
    renewsGeneration?: number,
  ): Promise<FlightResult> {
    for (;;) {
      const running = this.#flight;
      if (running === undefined) {
        const flight = this.#refreshFlight(reason, accept, renewsGeneration).finally(() => {
          if (this.#flight === flight) {
            this.#flight = undefined;
          }
        });
        this.#flight = flight;
        return flight;
      }

      const result = await running;
      if (accept(result.entry, performance.now()) || result.source === 'upstream') {
        return { ...result, joined: true };
      }
    }
  }

  async #refreshFlight(
    reason: RefreshReason,
    accept: AcceptStored,
    renewsGeneration?: number,
  ): Promise<FlightResult> {
    const startedAt = performance.now();
    const waitDeadline = startedAt + this.#options.lockWaitTimeoutMs;
    let waitedMs = 0;

    for (;;) {
      this.#assertOpen();
      let lease: LockLease | undefined;
      try {
        lease = await this.#lock.tryAcquire(this.#keys.lock, this.#options.lockTtlMs);
      } catch (error) {
        this.#onRedisFailure(error);
        return this.#fetchWithoutRedis(reason);
      }

      if (lease !== undefined) {
        if (waitedMs > 0) {
          this.#metrics?.observeLockWait(waitedMs / 1000);
        }
        try {
          return await this.#refreshUnderLock(lease, reason, accept, renewsGeneration);
        } catch (error) {
          if (!(error instanceof FencedWriteError) || performance.now() >= waitDeadline) {
            throw error;
          }
          continue;
        }
      }

      const waitStart = performance.now();
      const stored = await this.#waitForOtherPod(Math.max(0, waitDeadline - waitStart), accept);
      waitedMs += performance.now() - waitStart;
      const now = performance.now();
      const entry = stored === undefined ? undefined : this.#entryFromStore(stored, now);
      if (entry !== undefined && accept(entry, now)) {
        this.#remember(entry, this.#subscription.epoch);
        this.#metrics?.observeLockWait(waitedMs / 1000);
        return { entry, source: 'redis' };
      }
      if (stored?.cooldown !== undefined && stored.cooldownPttlMs > 0 && entry === undefined) {
        throw cooldownError(stored.cooldown, stored.cooldownPttlMs);
      }
      if (now >= waitDeadline) {
        throw new LockTimeoutError(
          `no token appeared within ${Math.round(waitedMs)} ms while another pod held the refresh lock (options.lockWaitTimeoutMs)`,
          { waitedMs: Math.round(waitedMs) },
        );
      }
    }
  }

  /**
   * Waits for another pod's `refreshed` message, or until its lock goes, whichever comes first,
   * then reads Redis. Returns undefined when Redis could not be read.
   */
  async #waitForOtherPod(
    maxWaitMs: number,
    accept: AcceptStored,
  ): Promise<StoredToken | undefined> {
    // Listening starts before the reads, so a `refreshed` message that lands between the failed
    // lock attempt and the wait is never missed.
    const stopListening = new AbortController();
    const signal = AbortSignal.any([this.#closeController.signal, stopListening.signal]);
    const refreshed = this.#subscription.nextRefreshed(
      Math.min(maxWaitMs, LOCK_CHECK_INTERVAL_MS),
      signal,
    );
    try {
      const [lockPttlMs, stored] = await Promise.all([this.#store.lockPttl(), this.#store.read()]);
      const entry = this.#entryFromStore(stored, performance.now());
      const settled = entry !== undefined && accept(entry, performance.now());
      if (settled || lockPttlMs === 0 || maxWaitMs <= 0) {
        return stored;
      }

      this.#logger.debug({ lockPttlMs }, 'waiting for another pod to refresh');
      await Promise.race([refreshed, sleep(Math.min(lockPttlMs, maxWaitMs), signal)]);
      return await this.#store.read();
    } catch (error) {
      if (error instanceof RedisUnavailableError) {
        this.#onRedisFailure(error);
        return undefined;
      }
      throw error;
    } finally {
      stopListening.abort();
    }
  }

  async #refreshUnderLock(
    lease: LockLease,
    reason: RefreshReason,
    accept: AcceptStored,
    renewsGeneration: number | undefined,
  ): Promise<FlightResult> {
    try {
      const stored = await this.#store.read();
      const now = performance.now();
      const entry = this.#entryFromStore(stored, now);
      if (entry !== undefined && accept(entry, now)) {
        this.#remember(entry, this.#subscription.epoch);
        this.#metrics?.countRefresh(this.id, reason, 'skipped');
        return { entry, source: 'redis' };
      }
      if (stored.cooldown !== undefined && stored.cooldownPttlMs > 0) {
        throw cooldownError(stored.cooldown, stored.cooldownPttlMs);
      }

      return await this.#requestWithRetries(lease, reason, entry, renewsGeneration);
    } catch (error) {
      if (error instanceof RedisUnavailableError) {
        this.#onRedisFailure(error);
        return this.#fetchWithoutRedis(reason);
      }
      throw error;
    } finally {
      // Not awaited, so callers never wait on it; close() waits for it before it quits Redis.
      const release = lease.release().catch((err: unknown) => {
        // An expired lease cannot be released; Redis drops it at its TTL.
        this.#logger.debug({ err }, 'lock release failed');
      });
      this.#pendingReleases.add(release);
      void release.finally(() => this.#pendingReleases.delete(release));
    }
  }

  async #requestWithRetries(
    lease: LockLease,
    reason: RefreshReason,
    previous: MemoryEntry | undefined,
    renewsGeneration: number | undefined,
  ): Promise<FlightResult> {
    const { attempts, baseDelayMs, maxDelayMs } = this.#options.retry;
    const requestTimeoutMs = this.#options.requestTimeoutMs;

    for (let attempt = 1; ; attempt += 1) {
      if (lease.remainingMs() <= requestTimeoutMs) {
        throw new LockTimeoutError(
          `the refresh lock has ${Math.max(0, Math.round(lease.remainingMs()))} ms left, less than options.requestTimeoutMs (${requestTimeoutMs})`,
          { waitedMs: 0 },
        );
      }

      const generation = await this.#store.nextGeneration();
      try {
        return await this.#requestAndStore(generation, reason, previous, renewsGeneration);
      } catch (error) {
        const newer =
          error instanceof TokenEndpointError ? await this.#readNewerThan(generation) : undefined;
        if (newer !== undefined) {
          return newer;
        }

        const retryable = error instanceof TokenEndpointError && attempt < attempts;
        if (!retryable) {
          if (!cooledDown.has(error as object)) {
            await this.#startCooldownFor(error);
          }
          throw error;
        }

        const backoffMs = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
        const delayMs = Math.max(error.retryAfterMs ?? 0, Math.round(Math.random() * backoffMs));
        if (lease.remainingMs() - delayMs <= requestTimeoutMs) {
          // The lock ends before the next attempt could start, so the fleet waits instead.
          await this.#startCooldownFor(error);
          throw error;
        }
        this.#logger.warn({ err: error, attempt, delayMs }, 'token request failed, retrying');
        await sleep(delayMs, this.#closeController.signal);
      }
    }
  }

  /**
   * Reads a token that another pod stored with a generation above `generation` after this pod's
   * token request failed. A pod that was paused past its lock, so that its request timed out,
   * then serves the token that the next lock holder fetched. Returns undefined when Redis holds
   * no newer token or cannot be read.
   */
  async #readNewerThan(generation: number): Promise<FlightResult | undefined> {
    let stored: StoredToken;
    try {
      stored = await this.#store.read();
    } catch (error) {
      if (error instanceof RedisUnavailableError) {
        return undefined;
      }
      throw error;
    }
    const entry = this.#entryFromStore(stored, performance.now());
    if (entry === undefined || entry.generation <= generation) {
      return undefined;
    }
    this.#remember(entry, this.#subscription.epoch);
    this.#logger.info(
      { generation, storedGeneration: entry.generation },
      'token request failed, serving the newer token another pod stored',
    );
    return { entry, source: 'redis' };
  }

  async #requestAndStore(
    generation: number,
    reason: RefreshReason,
    previous: MemoryEntry | undefined,
    renewsGeneration: number | undefined,
  ): Promise<FlightResult> {
    const grant = await this.#requestToken(reason, generation);
    const receivedAt = performance.now();
    const hash = hashToken(grant.accessToken);
    const same = previous?.hash === hash || this.#memory?.hash === hash;
    // An endpoint that reuses tokens hands this one back until its real end, so the full margin
    // would only bring the next request forward to get it once more. It keeps one second, since
    // `expires_in` is rounded to whole seconds (Doorkeeper rounds to the nearest one).
    // `expiresInMs` already has the request's duration taken off (see #requestToken).
    const lifetimeMs = same
      ? reusedLifetimeMs(
          grant.expiresInMs,
          Math.min(this.#options.skewMs, EXPIRES_IN_RESOLUTION_MS),
        )
      : storedLifetimeMs(grant.expiresInMs, this.#options.skewMs);

    if (lifetimeMs === 0) {
      const error = new InvalidTokenResponseError(
        `token endpoint returned a token with no usable life (${Math.max(0, Math.round(grant.expiresInMs))} ms left after the request, options.skewMs ${this.#options.skewMs})`,
        { status: 200, reason: 'expires_in leaves no usable life' },
      );
      this.#metrics?.countRefresh(this.id, reason, 'failure');
      this.#logger.warn({ err: error, reason, generation }, 'token refresh failed');
      this.emit('refreshFailed', { reason, err: error });
      // The same token again means the endpoint reuses it until its real end: ask again then.
      const cooldownMs = same
        ? Math.max(0, grant.expiresInMs) + EXPIRES_IN_RESOLUTION_MS
        : INVALID_RESPONSE_COOLDOWN_MS;
      await this.#startCooldown(error, cooldownMs);
      throw error;
    }

    const record: TokenRecord = {
      v: 1,
      g: generation,
      s: this.#sealer.seal(grant.accessToken),
      h: hash,
      l: lifetimeMs,
      r: reason,
      t: Date.now(),
      label: this.#options.provider.label,
    };
    if (reason === 'renewal' && renewsGeneration !== undefined) {
      record.rg = renewsGeneration;
    }
    if (same) {
      record.same = true;
    }

    const value = encodeTokenRecord(record);
    // The life left now, not at the response: the record's PTTL must never outlast the token.
    const pxMs = Math.max(1, Math.floor(lifetimeMs - (performance.now() - receivedAt)));
    const message = JSON.stringify({ type: 'refreshed', g: generation, px: pxMs, record: value });
    let outcome: { written: boolean; storedGeneration: number };
    try {
      outcome = await this.#store.writeIfCurrent(generation, value, pxMs, message);
    } catch (error) {
      if (!(error instanceof RedisUnavailableError)) {
        throw error;
      }
      // The token is valid even though Redis lost it: asking the endpoint again would cost a
      // second request for the same refresh.
      this.#onRedisFailure(error);
      return this.#keepInProcess(grant.accessToken, lifetimeMs, reason, receivedAt);
    }
    const { written, storedGeneration } = outcome;

    if (!written) {
      // A newer attempt has started: this pod's lock expired while it waited for the endpoint.
      this.#metrics?.countRefresh(this.id, reason, 'fenced');
      this.#logger.warn(
        { generation, storedGeneration },
        'token write rejected by a newer generation',
      );
      const entry = this.#entryFromStore(await this.#store.read(), performance.now());
      if (entry === undefined) {
        // Nothing newer is stored yet, or it was invalidated: the flight starts over.
        throw new FencedWriteError(storedGeneration);
      }
      this.#remember(entry, this.#subscription.epoch);
      return { entry, source: 'redis' };
    }

    // The endpoint issued this token again, so an earlier 401 for it no longer applies.
    this.#invalidatedHashes.delete(hash);
    const entry = this.#buildEntry(grant.accessToken, record, lifetimeMs, receivedAt);
    this.#remember(entry, this.#subscription.epoch);
    this.#metrics?.countRefresh(this.id, reason, 'success');
    this.#metrics?.countHit(this.id, 'upstream');
    this.#logger.info(
      { generation, remainingMs: lifetimeMs, reason, sameToken: same, createdAt: grant.createdAt },
      'token refreshed',
    );
    this.emit('refreshed', { generation, remainingMs: lifetimeMs, reason, origin: 'local' });
    await this.#scheduleRenewal(entry, lifetimeMs);
    return { entry, source: 'upstream' };
  }

  /** Sends one token request, with the timeout and metrics around it. */
  async #requestToken(reason: RefreshReason, generation: number): Promise<TokenGrant> {
    const timeoutMs = this.#options.requestTimeoutMs;
    // NOTE: not AbortSignal.timeout(): on Node 20, a timeout signal that only AbortSignal.any()
    // refers to can be garbage-collected before it fires, and the request then never times out
    // (seen here about once in 30 runs). A timer the call clears keeps the signal alive.
    const timeoutController = new AbortController();
    const timer = setTimeout(() => {
      timeoutController.abort(new DOMException('token request timed out', 'TimeoutError'));
    }, timeoutMs);
    const signal = AbortSignal.any([timeoutController.signal, this.#closeController.signal]);
    this.#logger.debug({ reason, generation }, 'refreshing token');

    const sentAt = performance.now();
    try {
      const grant = await this.#options.provider.requestToken({ signal, timeoutMs });
      // Custom providers are checked too: an empty or header-breaking token is never stored.
      const problem = findGrantProblem(grant);
      if (problem !== undefined) {
        throw new InvalidTokenResponseError(
          `token provider ${this.#options.provider.name} returned an unusable grant: ${problem}`,
          { reason: problem },
        );
      }
      this.#metrics?.observeTokenRequest((performance.now() - sentAt) / 1000, 'success');
      if (grant.expiresInDefaulted) {
        this.#logger.warn(
          { defaultExpiresInMs: grant.expiresInMs },
          'token response has no expires_in, using the default lifetime',
        );
      }
      return { ...grant, expiresInMs: grant.expiresInMs - (performance.now() - sentAt) };
    } catch (error) {
      this.#metrics?.observeTokenRequest((performance.now() - sentAt) / 1000, 'failure');
      this.#metrics?.countRefresh(this.id, reason, 'failure');
      this.#logger.warn({ err: error, reason, generation }, 'token refresh failed');
      this.emit('refreshFailed', { reason, err: error as Error });
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Starts the fleet-wide cooldown that `error` calls for, if any. */
  async #startCooldownFor(error: unknown): Promise<void> {
    let pxMs = 0;
    if (error instanceof RateLimitedError) {
      // `Retry-After: 0` or a past date still gets a short cooldown: without one, every caller
      // of every pod would send its own request while the endpoint keeps answering 429.
      pxMs = Math.max(error.retryAfterMs, MIN_RATE_LIMIT_COOLDOWN_MS);
    } else if (error instanceof ClientRejectedError) {
      pxMs = this.#options.rejectedClientCooldownMs;
    } else if (error instanceof InvalidTokenResponseError) {
      pxMs = INVALID_RESPONSE_COOLDOWN_MS;
    } else if (error instanceof TokenEndpointError && error.retryAfterMs !== undefined) {
      // A 503 with `Retry-After` asks the whole fleet to wait, just as a 429 does.
      pxMs = error.retryAfterMs;
    }
    if (pxMs > 0) {
      await this.#startCooldown(error as TokenfleetError, pxMs);
    }
  }

  /** Sets the cooldown key so that no pod sends a token request for `pxMs` milliseconds. */
  async #startCooldown(error: TokenfleetError, pxMs: number): Promise<void> {
    cooledDown.add(error);
    const cooldownMs = Math.max(1, Math.ceil(pxMs));
    this.#localCooldown = { until: performance.now() + cooldownMs, value: encodeCooldown(error) };
    try {
      await this.#store.setCooldown(
        encodeCooldown(error),
        cooldownMs,
        JSON.stringify({ type: 'cooldown' }),
      );
      this.#logger.warn({ cooldownMs, code: error.code }, 'fleet cooldown started');
    } catch (err) {
      this.#logger.warn({ err }, 'fleet cooldown could not be stored');
    }
  }

  async #scheduleRenewal(entry: MemoryEntry, lifetimeMs: number): Promise<void> {
    const scheduler = this.#options.renewal;
    if (scheduler === undefined) {
      return;
    }
    const delayMs = Math.max(0, Math.round(entry.renewalDueAt - performance.now()));
    const scheduled = scheduler.scheduleRenewal({
      tokenId: this.id,
      generation: entry.generation,
      delayMs,
      remainingMs: lifetimeMs,
    });
    // A scheduler on a frozen Redis must not hold the caller: wait at most redisTimeoutMs, and
    // let close() wait for what is still pending.
    const tracked = scheduled.then(
      () => undefined,
      (err: unknown) => {
        this.#logger.warn({ err, generation: entry.generation }, 'renewal job could not be added');
      },
    );
    this.#pendingRenewals.add(tracked);
    void tracked.finally(() => this.#pendingRenewals.delete(tracked));
    try {
      await Promise.race([
        scheduled,
        sleep(this.#options.redisTimeoutMs, undefined, { unref: true }).then(() => {
          throw new Error(`renewal job not added within ${this.#options.redisTimeoutMs} ms`);
        }),
      ]);
    } catch (err) {
      // The sweep re-creates a missing job, and the lazy path renews without one.
      this.#logger.warn({ err, generation: entry.generation }, 'renewal job could not be added');
    }
  }

  /**
   * Fetches a token with no fleet lock while Redis is down: the single flight keeps it to one
   * request per process. The token stays in memory only, as generation 0.
   */
  async #fetchWithoutRedis(reason: RefreshReason): Promise<FlightResult> {
    const cooldown = this.#localCooldown;
    const now = performance.now();
    if (cooldown !== undefined && now < cooldown.until) {
      throw cooldownError(cooldown.value, Math.ceil(cooldown.until - now));
    }
    let grant: TokenGrant;
    try {
      grant = await this.#requestToken(reason, 0);
    } catch (error) {
      await this.#startCooldownFor(error);
      throw error;
    }
    const lifetimeMs = storedLifetimeMs(grant.expiresInMs, this.#options.skewMs);
    if (lifetimeMs === 0) {
      throw new InvalidTokenResponseError('token endpoint returned a token with no usable life', {
        status: 200,
        reason: 'expires_in leaves no usable life',
      });
    }
    return this.#keepInProcess(grant.accessToken, lifetimeMs, reason, performance.now());
  }

  /** Holds a token that Redis could not store in this process only, as generation 0. */
  #keepInProcess(
    accessToken: string,
    lifetimeMs: number,
    reason: RefreshReason,
    receivedAt: number,
  ): FlightResult {
    const record: TokenRecord = {
      v: 1,
      g: 0,
      s: '',
      h: hashToken(accessToken),
      l: lifetimeMs,
      r: reason,
      t: Date.now(),
    };
    const entry = this.#buildEntry(accessToken, record, lifetimeMs, receivedAt);
    this.#memory = entry;
    this.#memoryVerified = false;
    this.#metrics?.countRefresh(this.id, reason, 'success');
    this.#metrics?.countHit(this.id, 'upstream');
    this.#logger.warn(
      { remainingMs: lifetimeMs },
      'token fetched without redis, held in this process only',
    );
    return { entry, source: 'upstream' };
  }

  #refreshAheadInBackground(entry: MemoryEntry, now: number): void {
    if (
      this.#backgroundRefresh !== undefined ||
      now < this.#nextBackgroundAttemptAt ||
      this.#closed
    ) {
      return;
    }
    if (now >= entry.renewalDueAt && this.#overdueWarnedGeneration !== entry.generation) {
      this.#overdueWarnedGeneration = entry.generation;
      const overdueMs = Math.round(now - entry.renewalDueAt);
      const level = this.#options.renewal === undefined ? 'debug' : 'warn';
      this.#logger[level](
        { generation: entry.generation, overdueMs },
        'renewal overdue, refreshing ahead in this pod',
      );
    }

    const generation = entry.generation;
    this.#backgroundRefresh = this.#joinFlight(
      'refresh-ahead',
      (stored) => stored.generation > generation,
    )
      .then(() => {
        this.#backgroundFailures = 0;
      })
      .catch((err: unknown) => {
        this.#backgroundFailures += 1;
        // At least the base delay whatever retry.maxDelayMs says, and never before a cooldown or
        // Retry-After ends: a background refresh must not become a polling loop.
        const capMs = Math.max(this.#options.retry.maxDelayMs, BACKGROUND_RETRY_BASE_MS);
        const backoffMs = Math.min(
          capMs,
          BACKGROUND_RETRY_BASE_MS * 2 ** (this.#backgroundFailures - 1),
        );
        const retryAfterMs = (err as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
        const delayMs = Math.max(backoffMs, typeof retryAfterMs === 'number' ? retryAfterMs : 0);
        this.#nextBackgroundAttemptAt = performance.now() + delayMs;
        this.#logger.warn(
          { err, nextAttemptInMs: delayMs },
          'background refresh failed, serving the current token',
        );
      })
      .finally(() => {
        this.#backgroundRefresh = undefined;
      });
  }

  // ---- messages and Redis health -------------------------------------------------------------

  #onMessage(message: {
    type: string;
    g?: number;
    px?: number;
    record?: string;
    h?: string;
  }): void {
    const now = performance.now();
    // NOTE: `px` is the life left at publish time, so the deadline runs late by the message's
    // delivery time (milliseconds on one network); `skewMs` covers it, the message carries no
    // clock reading because pods' clocks need not agree.
    if (
      message.type === 'refreshed' &&
      typeof message.record === 'string' &&
      typeof message.px === 'number'
    ) {
      const entry = this.#entryFromStore(
        { value: message.record, pttlMs: message.px, cooldown: undefined, cooldownPttlMs: -2 },
        now,
      );
      if (
        entry !== undefined &&
        (this.#memory === undefined || entry.generation > this.#memory.generation)
      ) {
        this.#memory = entry;
        this.emit('refreshed', {
          generation: entry.generation,
          remainingMs: message.px,
          reason: entry.record?.r ?? 'missing',
          origin: 'remote',
        });
      }
      return;
    }
    if (message.type === 'invalidated' && typeof message.h === 'string') {
      const held = this.#memory?.hash === message.h;
      this.#forgetToken(message.h);
      if (held) {
        this.emit('invalidated', { origin: 'remote' });
      }
    }
  }

  /**
   * Reads Redis once for every slow-path caller that arrives while a read is pending: a cold
   * process with 500 callers sends one read, not 500, before it joins the refresh.
   */
  #readShared(): Promise<StoredToken> {
    if (this.#pendingRead === undefined) {
      const read = this.#store.read().finally(() => {
        if (this.#pendingRead === read) {
          this.#pendingRead = undefined;
        }
      });
      this.#pendingRead = read;
    }
    return this.#pendingRead;
  }

  /**
   * Counts the token a flight handed to one caller. The caller whose flight sent the token request
   * is counted where the token is stored, so only joined callers and Redis results count here.
   */
  #countFlightHit(result: FlightResult): void {
    if (result.joined === true || result.source === 'redis') {
      this.#metrics?.countHit(this.id, result.source);
    }
  }

  /** Drops an invalidated token from memory and keeps reads from bringing it back. */
  #forgetToken(hash: string): void {
    if (this.#memory?.hash === hash) {
      this.#memory = undefined;
    }
    const now = performance.now();
    for (const [knownHash, until] of this.#invalidatedHashes) {
      if (until <= now) {
        this.#invalidatedHashes.delete(knownHash);
      }
    }
    this.#invalidatedHashes.set(hash, now + INVALIDATED_TOKEN_MEMORY_MS);
  }

  #isInvalidated(hash: string, now: number): boolean {
    const until = this.#invalidatedHashes.get(hash);
    return until !== undefined && now < until;
  }

  /** Reads Redis once in the background to learn whether it is back. */
  #probeRedis(): void {
    if (this.#redisProbe !== undefined || this.#closed) {
      return;
    }
    const epoch = this.#subscription.epoch;
    this.#redisProbe = this.#store
      .read()
      .then((stored) => {
        this.#onRedisSuccess();
        const entry = this.#entryFromStore(stored, performance.now());
        if (entry !== undefined) {
          this.#remember(entry, epoch);
        }
      })
      .catch((error: unknown) => this.#onRedisFailure(error))
      .finally(() => {
        this.#redisProbe = undefined;
      });
  }

  #onRedisFailure(error: unknown): void {
    this.#redisRetryAt = performance.now() + REDIS_RETRY_INTERVAL_MS;
    this.#memoryVerified = false;
    if (!this.#degraded) {
      this.#degraded = true;
      this.#logger.warn({ err: error }, 'redis unavailable, serving tokens from this process');
      this.emit('degraded', { cause: 'redis', err: error as Error });
    }
  }

  #onRedisSuccess(): void {
    if (this.#degraded) {
      this.#degraded = false;
      this.#logger.info('redis available again');
    }
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new TokenCacheClosedError();
    }
  }
}

function toInfo(entry: MemoryEntry, source: TokenInfo['source'], now: number): TokenInfo {
  return {
    token: entry.token,
    remainingMs: Math.max(0, Math.round(entry.deadline - now)),
    generation: entry.generation,
    source,
  };
}

/** Keeps a caller's margin inside the token's life: a margin as long as the life would loop. */
function clampMargin(marginMs: number, lifetimeMs: number): number {
  if (!Number.isFinite(marginMs) || marginMs <= 0) {
    return 0;
  }
  return Math.min(marginMs, lifetimeMs * 0.9);
}
