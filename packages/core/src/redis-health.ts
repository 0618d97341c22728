import type { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { RedisTokenStore, StoredToken } from './redis-store.js';
import type { TokenCacheEvents } from './token-cache-types.js';

/** After a failed Redis command, how long the cache serves from memory before it reads Redis again. */
const REDIS_RETRY_INTERVAL_MS = 1_000;

export interface RedisHealthOptions {
  store: RedisTokenStore;
  logger: Logger;
  /** The cache, which emits `degraded`. */
  events: EventEmitter<TokenCacheEvents>;
  /** Called on every failed command, before `degraded` is emitted. */
  onFailure(): void;
}

/**
 * Tracks whether one cache's Redis responds. After a failed command the cache serves memory
 * alone and reads Redis again once REDIS_RETRY_INTERVAL_MS has passed.
 */
export class RedisHealth {
  readonly #store: RedisTokenStore;
  readonly #logger: Logger;
  readonly #events: EventEmitter<TokenCacheEvents>;
  readonly #onFailure: () => void;

  #redisRetryAt = 0;
  #degraded = false;
  #redisProbe: Promise<void> | undefined;
  #pendingRead: Promise<StoredToken> | undefined;

  constructor(options: RedisHealthOptions) {
    this.#store = options.store;
    this.#logger = options.logger;
    this.#events = options.events;
    this.#onFailure = options.onFailure;
  }

  get degraded(): boolean {
    return this.#degraded;
  }

  /** Returns whether the pause after the last failed command has ended at `now`. */
  isRetryDue(now: number): boolean {
    return now >= this.#redisRetryAt;
  }

  /**
   * Reads Redis once for every slow-path caller that arrives while a read is pending: a cold
   * process with 500 callers sends one read, not 500, before it joins the refresh.
   */
  readShared(): Promise<StoredToken> {
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
   * Reads Redis once in the background to learn whether it is back, and hands what it read to
   * `onRead`. Does nothing while an earlier probe runs.
   */
  probe(onRead: (stored: StoredToken) => void): void {
    if (this.#redisProbe !== undefined) {
      return;
    }
    this.#redisProbe = this.#store
      .read()
      .then((stored) => {
        this.onSuccess();
        onRead(stored);
      })
      .catch((error: unknown) => this.onFailure(error))
      .finally(() => {
        this.#redisProbe = undefined;
      });
  }

  /** Waits for the running probe, if any. */
  async settle(): Promise<void> {
    await this.#redisProbe;
  }

  onFailure(error: unknown): void {
    this.#redisRetryAt = performance.now() + REDIS_RETRY_INTERVAL_MS;
    this.#onFailure();
    if (!this.#degraded) {
      this.#degraded = true;
      this.#logger.warn({ err: error }, 'redis unavailable, serving tokens from this process');
      this.#events.emit('degraded', { cause: 'redis', err: error as Error });
    }
  }

  onSuccess(): void {
    if (this.#degraded) {
      this.#degraded = false;
      this.#logger.info('redis available again');
    }
  }
}
