import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import {
  ClientRejectedError,
  InvalidTokenResponseError,
  RateLimitedError,
  TokenEndpointError,
  type TokenfleetError,
} from './errors.js';
import { hashToken } from './keys.js';
import { cooldownError, encodeCooldown, reusedLifetimeMs, storedLifetimeMs } from './lifetime.js';
import { buildMemoryEntry, type MemoryEntry } from './memory-entry.js';
import type { CacheMetrics } from './metrics.js';
import type { ResolvedTokenCacheOptions } from './options.js';
import type { TokenGrant } from './provider.js';
import { type RedisTokenStore, RedisUnavailableError } from './redis-store.js';
import type { FlightResult, RefreshContext, RefreshHost } from './refresh-context.js';
import type { Sealer } from './seal.js';
import { sleep } from './timers.js';
import type { RefreshReason } from './token-cache-types.js';
import { encodeTokenRecord, type TokenRecord } from './token-record.js';
import type { TokenSubscription } from './token-subscription.js';
import { findGrantProblem } from './wire.js';

/** Fleet-wide back-off after a response that was not a usable token, so a bad endpoint is not hammered. */
const INVALID_RESPONSE_COOLDOWN_MS = 5_000;

/**
 * `expires_in` counts seconds, usually whole ones, so a reused token's real end may come up to
 * this long after the stated one.
 */
const EXPIRES_IN_RESOLUTION_MS = 1_000;

/** Shortest fleet cooldown after a 429: `Retry-After` counts whole seconds, so 0 is under a second. */
const MIN_RATE_LIMIT_COOLDOWN_MS = 1_000;

/** Errors whose cooldown is already set, so the retry loop does not set another. */
export const cooledDown = new WeakSet<object>();

/** A write lost to a newer attempt that stored nothing: the flight starts over. */
export class FencedWriteError extends TokenEndpointError {
  constructor(newerGeneration: number) {
    super(`token write lost to generation ${newerGeneration}, which has stored no token yet`);
  }
}

/**
 * Sends token requests for one cache and stores what they return: the fenced write, the fleet
 * cooldowns after a failure, the renewal job, and the in-process token while Redis is down.
 */
export class TokenIssuer {
  readonly #tokenId: string;
  readonly #options: ResolvedTokenCacheOptions;
  readonly #store: RedisTokenStore;
  readonly #sealer: Sealer;
  readonly #subscription: TokenSubscription;
  readonly #logger: Logger;
  readonly #metrics: CacheMetrics | undefined;
  readonly #closeSignal: AbortSignal;
  readonly #senderId: string;
  readonly #events: RefreshContext['events'];
  readonly #host: RefreshHost;

  /** The last cooldown this pod started, kept in memory too so that it applies while Redis is down. */
  #localCooldown: { until: number; value: string } | undefined;
  readonly #pendingRenewals = new Set<Promise<void>>();

  constructor(context: RefreshContext) {
    this.#tokenId = context.tokenId;
    this.#options = context.options;
    this.#store = context.store;
    this.#sealer = context.sealer;
    this.#subscription = context.subscription;
    this.#logger = context.logger;
    this.#metrics = context.metrics;
    this.#closeSignal = context.closeSignal;
    this.#senderId = context.senderId;
    this.#events = context.events;
    this.#host = context.host;
  }

  /** Waits for the renewal jobs still being added, at most redisTimeoutMs. */
  async settleRenewals(): Promise<void> {
    await Promise.race([
      Promise.allSettled(this.#pendingRenewals),
      sleep(this.#options.redisTimeoutMs, undefined, { unref: true }),
    ]);
  }

  /**
   * Sends one token request as `generation` and stores the token unless a newer generation has
   * started. Keeps the token in this process only when Redis fails during the write.
   */
  async requestAndStore(
    generation: number,
    reason: RefreshReason,
    previous: MemoryEntry | undefined,
    renewsGeneration: number | undefined,
  ): Promise<FlightResult> {
    const grant = await this.#requestToken(reason, generation);
    const receivedAt = performance.now();
    const hash = hashToken(grant.accessToken);
    const same = previous?.hash === hash || this.#host.memory()?.hash === hash;
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
      this.#metrics?.countRefresh(this.#tokenId, reason, 'failure');
      this.#logger.warn({ err: error, reason, generation }, 'token refresh failed');
      this.#events.emit('refreshFailed', { reason, err: error });
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
    const message = JSON.stringify({
      type: 'refreshed',
      g: generation,
      px: pxMs,
      record: value,
      o: this.#senderId,
    });
    let outcome: { written: boolean; storedGeneration: number };
    try {
      outcome = await this.#store.writeIfCurrent(generation, value, pxMs, message);
    } catch (error) {
      if (!(error instanceof RedisUnavailableError)) {
        throw error;
      }
      // The token is valid even though Redis lost it: asking the endpoint again would cost a
      // second request for the same refresh.
      this.#host.onRedisFailure(error);
      return this.#keepInProcess(grant.accessToken, lifetimeMs, reason, receivedAt);
    }
    const { written, storedGeneration } = outcome;

    if (!written) {
      // A newer attempt has started: this pod's lock expired while it waited for the endpoint.
      this.#metrics?.countRefresh(this.#tokenId, reason, 'fenced');
      this.#logger.warn(
        { generation, storedGeneration },
        'token write rejected by a newer generation',
      );
      const entry = this.#host.entryFromStore(await this.#store.read(), performance.now());
      if (entry === undefined) {
        // Nothing newer is stored yet, or it was invalidated: the flight starts over.
        throw new FencedWriteError(storedGeneration);
      }
      this.#host.remember(entry, this.#subscription.epoch);
      return { entry, source: 'redis' };
    }

    // The endpoint issued this token again, so an earlier 401 for it no longer applies.
    this.#host.clearInvalidated(hash);
    const entry = this.#buildEntry(grant.accessToken, record, lifetimeMs, receivedAt);
    this.#host.remember(entry, this.#subscription.epoch);
    this.#metrics?.countRefresh(this.#tokenId, reason, 'success');
    this.#metrics?.countHit(this.#tokenId, 'upstream');
    this.#logger.info(
      { generation, remainingMs: lifetimeMs, reason, sameToken: same, createdAt: grant.createdAt },
      'token refreshed',
    );
    this.#events.emit('refreshed', {
      generation,
      remainingMs: lifetimeMs,
      reason,
      origin: 'local',
    });
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
    const signal = AbortSignal.any([timeoutController.signal, this.#closeSignal]);
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
      this.#metrics?.countRefresh(this.#tokenId, reason, 'failure');
      this.#logger.warn({ err: error, reason, generation }, 'token refresh failed');
      this.#events.emit('refreshFailed', { reason, err: error as Error });
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Starts the fleet-wide cooldown that `error` calls for, if any. */
  async startCooldownFor(error: unknown): Promise<void> {
    let pxMs = 0;
    if (error instanceof RateLimitedError) {
      // `Retry-After: 0` or a past date still gets a short cooldown: without one, every caller
      // of every pod would send its own request while the endpoint keeps returning 429.
      pxMs = Math.max(error.retryAfterMs, MIN_RATE_LIMIT_COOLDOWN_MS);
    } else if (error instanceof ClientRejectedError) {
      pxMs = this.#options.rejectedClientCooldownMs;
    } else if (error instanceof InvalidTokenResponseError) {
      pxMs = INVALID_RESPONSE_COOLDOWN_MS;
    } else if (error instanceof TokenEndpointError && error.retryAfterMs !== undefined) {
      // A 503 with `Retry-After` tells the whole fleet to wait, just as a 429 does.
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
      tokenId: this.#tokenId,
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
  async fetchWithoutRedis(reason: RefreshReason): Promise<FlightResult> {
    const cooldown = this.#localCooldown;
    const now = performance.now();
    if (cooldown !== undefined && now < cooldown.until) {
      throw cooldownError(cooldown.value, Math.ceil(cooldown.until - now));
    }
    let grant: TokenGrant;
    try {
      grant = await this.#requestToken(reason, 0);
    } catch (error) {
      await this.startCooldownFor(error);
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
    this.#host.keepUnverified(entry);
    this.#metrics?.countRefresh(this.#tokenId, reason, 'success');
    this.#metrics?.countHit(this.#tokenId, 'upstream');
    this.#logger.warn(
      { remainingMs: lifetimeMs },
      'token fetched without redis, held in this process only',
    );
    return { entry, source: 'upstream' };
  }

  #buildEntry(token: string, record: TokenRecord, remainingMs: number, now: number): MemoryEntry {
    return buildMemoryEntry(token, record, remainingMs, now, (lifetimeMs) =>
      this.#host.refreshAheadMs(lifetimeMs),
    );
  }
}
