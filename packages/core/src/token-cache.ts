import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Cluster, Redis } from 'ioredis';
import { type Logger, pino } from 'pino';
import { invalidArgument, TokenCacheClosedError } from './errors.js';
import { createRedlockFleetLock, type FleetLock } from './fleet-lock.js';
import { readTokenStatus } from './inspect-tokens.js';
import { buildTokenKeys, computeTokenId, hashToken, type TokenKeys } from './keys.js';
import { cooldownError } from './lifetime.js';
import {
  buildMemoryEntry,
  clampMargin,
  HOT_PATH_CLOCK_EVERY,
  type MemoryEntry,
  toInfo,
} from './memory-entry.js';
import { type CacheMetrics, type CacheMetricsSource, cacheMetricsFor } from './metrics.js';
import {
  type ResolvedTokenCacheOptions,
  resolveTokenCacheOptions,
  type TokenCacheOptions,
} from './options.js';
import { connectCacheRedis } from './redis-connection.js';
import { RedisHealth } from './redis-health.js';
import { RedisTokenStore, type StoredToken } from './redis-store.js';
import type { FlightResult } from './refresh-context.js';
import { RefreshProtocol } from './refresh-protocol.js';
import { createSealer, deriveSealingKey, type Sealer } from './seal.js';
import { MAX_TIMER_DELAY_MS } from './timers.js';
import type {
  RenewResult,
  TokenCache,
  TokenCacheEvents,
  TokenInfo,
  TokenStatus,
} from './token-cache-types.js';
import { decodeTokenRecord } from './token-record.js';
import { TokenSubscription } from './token-subscription.js';

/**
 * How long an invalidated token stays refused in this process: longer than any read that may
 * still carry it (a read is bounded by redisTimeoutMs).
 */
const INVALIDATED_TOKEN_MEMORY_MS = 10 * 60_000;

/**
 * Creates a fleet-shared token cache for one provider. Connections made from a URL are owned and
 * closed by `close()`; a client passed in stays open.
 */
export function createTokenCache(options: TokenCacheOptions): TokenCache {
  return new FleetTokenCache(resolveTokenCacheOptions(options));
}

class FleetTokenCache extends EventEmitter<TokenCacheEvents> implements TokenCache {
  readonly id: string;
  readonly #senderId = randomUUID();

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
  readonly #redisHealth: RedisHealth;
  readonly #refresher: RefreshProtocol;

  #memory: MemoryEntry | undefined;
  #memoryVerified = false;
  #memoryHits = 0;
  /** Hashes of invalidated tokens, with the monotonic time until which no read may bring them back. */
  readonly #invalidatedHashes = new Map<string, number>();
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

    const connection = connectCacheRedis(options);
    this.#redis = connection.redis;
    this.#ownsRedis = connection.owned;

    this.#store = new RedisTokenStore(this.#redis, this.#keys, options.redisTimeoutMs);
    this.#redisHealth = new RedisHealth({
      store: this.#store,
      logger: this.#logger,
      events: this,
      onFailure: () => {
        this.#memoryVerified = false;
      },
    });
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
      degraded: () => this.#redisHealth.degraded,
    };
    if (options.metricsRegistry) {
      this.#metrics = cacheMetricsFor(options.metricsRegistry);
      this.#metrics.add(this.#metricsSource);
    }
    this.#refresher = this.#createRefresher();
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
          this.#refresher.refreshAheadInBackground(entry, now);
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
        this.#refresher.refreshAheadInBackground(entry, now);
      }
      return toInfo(entry, 'memory', now);
    }
    return this.#getTokenSlow();
  }

  async invalidate(token: string): Promise<boolean> {
    this.#assertOpen();
    if (typeof token !== 'string' || token.length === 0) {
      throw invalidArgument('ERR_INVALID_ARG_TYPE', '"token" must be a non-empty string');
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
      this.#redisHealth.onFailure(error);
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
      this.#redisHealth.onFailure(error);
    }
    const result = await this.#refresher.joinFlight(
      'forced',
      (entry) => entry.generation > seenGeneration,
    );
    return toInfo(result.entry, result.source, performance.now());
  }

  async renew(generation: number): Promise<RenewResult> {
    this.#assertOpen();
    if (!Number.isSafeInteger(generation) || generation < 0) {
      throw invalidArgument('ERR_INVALID_ARG_VALUE', '"generation" must be a non-negative integer');
    }

    const result = await this.#refresher.joinFlight(
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
    await this.#refresher.settle();
    await this.#redisHealth.settle();
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
    if (this.#redisHealth.degraded && memory !== undefined && now < memory.deadline) {
      if (this.#redisHealth.isRetryDue(now)) {
        this.#probeRedis();
      }
      return this.#serveWithoutRedis(memory, now);
    }
    if (!this.#redisHealth.isRetryDue(now)) {
      return this.#serveWithoutRedis(memory, now);
    }

    const epoch = this.#subscription.epoch;
    let stored: StoredToken;
    try {
      stored = await this.#redisHealth.readShared();
    } catch (error) {
      this.#redisHealth.onFailure(error);
      // Read memory again: a flight may have filled it while the read waited for its timeout.
      return this.#serveWithoutRedis(this.#memory, performance.now());
    }
    this.#redisHealth.onSuccess();

    const readAt = performance.now();
    const entry = this.#entryFromStore(stored, readAt);
    if (entry !== undefined) {
      this.#remember(entry, epoch);
      this.#metrics?.countHit(this.id, 'redis');
      if (readAt >= entry.refreshAheadAt) {
        this.#refresher.refreshAheadInBackground(entry, readAt);
      }
      return toInfo(entry, 'redis', readAt);
    }

    if (stored.cooldown !== undefined && stored.cooldownPttlMs > 0) {
      throw cooldownError(stored.cooldown, stored.cooldownPttlMs);
    }

    const result = await this.#refresher.joinFlight('missing', () => true);
    this.#countFlightHit(result);
    return toInfo(result.entry, result.source, performance.now());
  }

  /** Serves the in-process token while Redis is down, or fetches one without the fleet lock. */
  async #serveWithoutRedis(memory: MemoryEntry | undefined, now: number): Promise<TokenInfo> {
    if (memory !== undefined && now < memory.deadline) {
      this.#memoryHits += 1;
      return toInfo(memory, 'memory', now);
    }
    const result = await this.#refresher.joinFlight('missing', () => true);
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
      // A read that returns after invalidate() may still carry the token it deleted.
      return undefined;
    }
    // The PTTL was read at some point of the round trip; counting from its start keeps the
    // deadline on the safe side.
    const base = stored.readStartedAt === undefined ? now : Math.min(now, stored.readStartedAt);
    return buildMemoryEntry(token, record, stored.pttlMs, base, (lifetimeMs) =>
      this.refreshAheadMs(lifetimeMs),
    );
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

  /** Hands the refresh protocol the parts of this cache that it reads and updates. */
  #createRefresher(): RefreshProtocol {
    return new RefreshProtocol({
      tokenId: this.id,
      options: this.#options,
      keys: this.#keys,
      store: this.#store,
      lock: this.#lock,
      sealer: this.#sealer,
      subscription: this.#subscription,
      logger: this.#logger,
      metrics: this.#metrics,
      senderId: this.#senderId,
      closeSignal: this.#closeController.signal,
      events: this,
      host: {
        memory: () => this.#memory,
        remember: (entry, epoch) => this.#remember(entry, epoch),
        keepUnverified: (entry) => {
          this.#memory = entry;
          this.#memoryVerified = false;
        },
        entryFromStore: (stored, now) => this.#entryFromStore(stored, now),
        clearInvalidated: (hash) => {
          this.#invalidatedHashes.delete(hash);
        },
        onRedisFailure: (error) => this.#redisHealth.onFailure(error),
        refreshAheadMs: (lifetimeMs) => this.refreshAheadMs(lifetimeMs),
        assertOpen: () => this.#assertOpen(),
        isClosed: () => this.#closed,
      },
    });
  }

  // ---- messages, invalidation and the Redis probe --------------------------------------------

  #onMessage(message: {
    type: string;
    g?: number;
    px?: number;
    record?: string;
    h?: string;
    o?: string;
  }): void {
    // This cache's own message may arrive before its write returns; the write path handles it.
    if (message.type === 'refreshed' && message.o === this.#senderId) {
      return;
    }
    const now = performance.now();
    // NOTE: `px` is the life left at publish time, so the deadline runs late by the message's
    // delivery time (milliseconds on one network), and `skewMs` covers it. The message carries no
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
    if (this.#closed) {
      return;
    }
    const epoch = this.#subscription.epoch;
    this.#redisHealth.probe((stored) => {
      const entry = this.#entryFromStore(stored, performance.now());
      if (entry !== undefined) {
        this.#remember(entry, epoch);
      }
    });
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new TokenCacheClosedError();
    }
  }
}
