import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { LockTimeoutError, TokenEndpointError } from './errors.js';
import type { FleetLock, LockLease } from './fleet-lock.js';
import type { TokenKeys } from './keys.js';
import { cooldownError } from './lifetime.js';
import type { MemoryEntry } from './memory-entry.js';
import type { CacheMetrics } from './metrics.js';
import type { ResolvedTokenCacheOptions } from './options.js';
import { type RedisTokenStore, RedisUnavailableError, type StoredToken } from './redis-store.js';
import type { AcceptStored, FlightResult, RefreshContext, RefreshHost } from './refresh-context.js';
import { sleep } from './timers.js';
import type { RefreshReason } from './token-cache-types.js';
import { cooledDown, FencedWriteError, TokenIssuer } from './token-issuer.js';
import type { TokenSubscription } from './token-subscription.js';

/** Maximum single wait for another pod's refresh before the lock and Redis are checked again. */
const LOCK_CHECK_INTERVAL_MS = 2_000;

/** First back-off after a failed background refresh, doubled up to `retry.maxDelayMs`. */
const BACKGROUND_RETRY_BASE_MS = 1_000;

/**
 * The fleet refresh protocol of one cache: a single flight per process, the Redis lock per fleet,
 * the wait for another pod's token, and the retries of a failed token request.
 */
export class RefreshProtocol {
  readonly #tokenId: string;
  readonly #options: ResolvedTokenCacheOptions;
  readonly #keys: TokenKeys;
  readonly #store: RedisTokenStore;
  readonly #lock: FleetLock;
  readonly #subscription: TokenSubscription;
  readonly #logger: Logger;
  readonly #metrics: CacheMetrics | undefined;
  readonly #closeSignal: AbortSignal;
  readonly #host: RefreshHost;
  readonly #issuer: TokenIssuer;

  #flight: Promise<FlightResult> | undefined;
  readonly #pendingReleases = new Set<Promise<void>>();
  #backgroundRefresh: Promise<void> | undefined;
  #nextBackgroundAttemptAt = 0;
  #backgroundFailures = 0;
  #overdueWarnedGeneration = -1;

  constructor(context: RefreshContext) {
    this.#tokenId = context.tokenId;
    this.#options = context.options;
    this.#keys = context.keys;
    this.#store = context.store;
    this.#lock = context.lock;
    this.#subscription = context.subscription;
    this.#logger = context.logger;
    this.#metrics = context.metrics;
    this.#closeSignal = context.closeSignal;
    this.#host = context.host;
    this.#issuer = new TokenIssuer(context);
  }

  /**
   * Waits for the running flight and background refresh, then for the lock releases and, at most
   * redisTimeoutMs, for the renewal jobs still being added.
   */
  async settle(): Promise<void> {
    await Promise.allSettled([this.#flight, this.#backgroundRefresh]);
    await Promise.allSettled(this.#pendingReleases);
    await this.#issuer.settleRenewals();
  }

  /** Joins the running refresh of this process, or starts one. */
  async joinFlight(
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
      this.#host.assertOpen();
      let lease: LockLease | undefined;
      try {
        lease = await this.#lock.tryAcquire(this.#keys.lock, this.#options.lockTtlMs);
      } catch (error) {
        this.#host.onRedisFailure(error);
        return this.#issuer.fetchWithoutRedis(reason);
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
      const entry = stored === undefined ? undefined : this.#host.entryFromStore(stored, now);
      if (entry !== undefined && accept(entry, now)) {
        this.#host.remember(entry, this.#subscription.epoch);
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
    const signal = AbortSignal.any([this.#closeSignal, stopListening.signal]);
    const refreshed = this.#subscription.nextRefreshed(
      Math.min(maxWaitMs, LOCK_CHECK_INTERVAL_MS),
      signal,
    );
    try {
      const [lockPttlMs, stored] = await Promise.all([this.#store.lockPttl(), this.#store.read()]);
      const entry = this.#host.entryFromStore(stored, performance.now());
      const settled = entry !== undefined && accept(entry, performance.now());
      if (settled || lockPttlMs === 0 || maxWaitMs <= 0) {
        return stored;
      }

      this.#logger.debug({ lockPttlMs }, 'waiting for another pod to refresh');
      await Promise.race([refreshed, sleep(Math.min(lockPttlMs, maxWaitMs), signal)]);
      return await this.#store.read();
    } catch (error) {
      if (error instanceof RedisUnavailableError) {
        this.#host.onRedisFailure(error);
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
      const entry = this.#host.entryFromStore(stored, now);
      if (entry !== undefined && accept(entry, now)) {
        this.#host.remember(entry, this.#subscription.epoch);
        this.#metrics?.countRefresh(this.#tokenId, reason, 'skipped');
        return { entry, source: 'redis' };
      }
      if (stored.cooldown !== undefined && stored.cooldownPttlMs > 0) {
        throw cooldownError(stored.cooldown, stored.cooldownPttlMs);
      }

      return await this.#requestWithRetries(lease, reason, entry, renewsGeneration);
    } catch (error) {
      if (error instanceof RedisUnavailableError) {
        this.#host.onRedisFailure(error);
        return this.#issuer.fetchWithoutRedis(reason);
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
        return await this.#issuer.requestAndStore(generation, reason, previous, renewsGeneration);
      } catch (error) {
        const newer =
          error instanceof TokenEndpointError ? await this.#readNewerThan(generation) : undefined;
        if (newer !== undefined) {
          return newer;
        }

        const retryable = error instanceof TokenEndpointError && attempt < attempts;
        if (!retryable) {
          if (!cooledDown.has(error as object)) {
            await this.#issuer.startCooldownFor(error);
          }
          throw error;
        }

        const backoffMs = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
        const delayMs = Math.max(error.retryAfterMs ?? 0, Math.round(Math.random() * backoffMs));
        if (lease.remainingMs() - delayMs <= requestTimeoutMs) {
          // The lock ends before the next attempt could start, so the fleet waits instead.
          await this.#issuer.startCooldownFor(error);
          throw error;
        }
        this.#logger.warn({ err: error, attempt, delayMs }, 'token request failed, retrying');
        await sleep(delayMs, this.#closeSignal);
      }
    }
  }

  /**
   * Reads a token that another pod stored with a generation above `generation` after this pod's
   * token request failed. A pod that was paused past its lock, so that its request timed out,
   * then serves the token that the next lock holder fetched. Returns undefined when Redis stores
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
    const entry = this.#host.entryFromStore(stored, performance.now());
    if (entry === undefined || entry.generation <= generation) {
      return undefined;
    }
    this.#host.remember(entry, this.#subscription.epoch);
    this.#logger.info(
      { generation, storedGeneration: entry.generation },
      'token request failed, serving the newer token another pod stored',
    );
    return { entry, source: 'redis' };
  }

  /**
   * Starts a background refresh of `entry` unless one is running, the back-off after the last
   * failed one has not ended, or the cache is closed. Never throws: failures are logged.
   */
  refreshAheadInBackground(entry: MemoryEntry, now: number): void {
    if (
      this.#backgroundRefresh !== undefined ||
      now < this.#nextBackgroundAttemptAt ||
      this.#host.isClosed()
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
    this.#backgroundRefresh = this.joinFlight(
      'refresh-ahead',
      (stored) => stored.generation > generation,
    )
      .then(() => {
        this.#backgroundFailures = 0;
      })
      .catch((err: unknown) => {
        this.#backgroundFailures += 1;
        // At least the base delay whatever retry.maxDelayMs sets, and never before a cooldown or
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
}
