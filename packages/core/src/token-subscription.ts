import { EventEmitter, once } from 'node:events';
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import { sanitizeRedisError } from './redis-store.js';

/** A message on a token's events channel, as published by the Lua scripts' callers. */
export interface TokenEventMessage {
  type: string;
  g?: number;
  px?: number;
  record?: string;
  h?: string;
  /** Sender id of a `refreshed` message: the cache that wrote it. */
  o?: string;
}

export interface TokenSubscriptionOptions {
  /** The cache's connection; the subscription runs on a duplicate of it, which it owns. */
  redis: Redis | Cluster;
  channel: string;
  logger: Logger;
  onMessage(message: TokenEventMessage): void;
  /** Called whenever the subscription was lost, since messages may have been missed. */
  onResubscribed(): void;
}

/**
 * The pub/sub side of one token cache: a dedicated connection subscribed to the token's events
 * channel. `epoch` counts subscriptions, so a caller can tell whether the subscriber was away
 * between two moments and memory may have missed a message.
 */
export class TokenSubscription {
  readonly #subscriber: Redis | Cluster;
  readonly #options: TokenSubscriptionOptions;
  readonly #refreshed = new EventEmitter();
  #subscribed = false;
  #epoch = 0;
  #closed = false;

  constructor(options: TokenSubscriptionOptions) {
    this.#options = options;
    this.#refreshed.setMaxListeners(0);
    this.#subscriber = options.redis.duplicate();
    this.#subscriber.on('error', (err: Error) => {
      options.logger.debug({ err: sanitizeRedisError(err) }, 'redis subscriber connection error');
    });
    this.#subscriber.on('message', (channel: string, text: string) => this.#receive(channel, text));
    this.#subscriber.on('close', () => this.#lost());
    // SUBSCRIBE waits for 'ready': sent earlier, it turns the connection into subscriber mode
    // before ioredis's ready check (INFO) runs, and that check then fails. ioredis subscribes
    // again on its own after a reconnect; a first subscribe that failed is sent here too.
    this.#subscriber.on('ready', () => {
      void this.#subscribe();
    });
    if (this.#subscriber.status === 'ready') {
      void this.#subscribe();
    }
  }

  /** Number of subscriptions so far; it changes every time the subscription is lost and regained. */
  get epoch(): number {
    return this.#epoch;
  }

  /** Whether the subscription has been up without a break since `epoch` was read. */
  isSubscribedAt(epoch: number): boolean {
    return this.#subscribed && this.#epoch === epoch;
  }

  /**
   * Resolves on the next `refreshed` or `cooldown` message (a refresh ended either way), after
   * `timeoutMs`, or when `signal` aborts.
   */
  async nextRefreshed(timeoutMs: number, signal: AbortSignal): Promise<void> {
    // A timer, not AbortSignal.timeout(), which AbortSignal.any() may let Node 20 collect.
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), Math.max(1, Math.round(timeoutMs)));
    try {
      await once(this.#refreshed, 'refreshed', {
        signal: AbortSignal.any([timeout.signal, signal]),
      });
    } catch (error) {
      if (!(error instanceof Error && error.name === 'AbortError')) {
        throw error;
      }
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#subscribed = false;
    // QUIT waits for a reply, which a server that accepted the connection but hangs never sends.
    // A subscriber has nothing to flush, so closing the socket loses nothing.
    this.#subscriber.disconnect();
  }

  async #subscribe(): Promise<void> {
    if (this.#closed || this.#subscribed) {
      return;
    }
    try {
      await this.#subscriber.subscribe(this.#options.channel);
    } catch (err) {
      this.#options.logger.debug(
        { err: sanitizeRedisError(err) },
        'redis subscribe failed, retrying on reconnect',
      );
      return;
    }
    if (!this.#closed && !this.#subscribed) {
      this.#subscribed = true;
      this.#epoch += 1;
    }
  }

  #lost(): void {
    if (this.#subscribed) {
      this.#subscribed = false;
      this.#options.onResubscribed();
    }
  }

  #receive(channel: string, text: string): void {
    if (channel !== this.#options.channel) {
      return;
    }
    let message: TokenEventMessage;
    try {
      message = JSON.parse(text) as TokenEventMessage;
    } catch {
      this.#options.logger.warn({ channel }, 'ignored an event message that is not JSON');
      return;
    }
    if (message === null || typeof message !== 'object' || typeof message.type !== 'string') {
      return;
    }
    this.#options.onMessage(message);
    if (message.type === 'refreshed' || message.type === 'cooldown') {
      this.#refreshed.emit('refreshed');
    }
  }
}
