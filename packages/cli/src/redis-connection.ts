import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { redactUrl } from './config.js';
import { CommandFailedError } from './errors.js';

/** Time to open the connection before a command gives up, in milliseconds. */
const CONNECT_TIMEOUT_MS = 5_000;

/** Maximum pause between reconnect attempts of a long-running command, in milliseconds. */
const MAX_RECONNECT_DELAY_MS = 2_000;

export interface ConnectRedisOptions {
  /**
   * Whether to reconnect after a lost connection. One-shot commands fail at once instead, so a
   * wrong URL ends the run with one error line rather than a retry loop.
   */
  reconnect: boolean;
  logger: Logger;
}

/**
 * Opens an ioredis connection and waits until it is ready. Raises `CommandFailedError` naming the
 * URL (password masked) and the socket error when the server cannot be reached.
 */
export async function connectRedis(url: string, options: ConnectRedisOptions): Promise<Redis> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    maxRetriesPerRequest: options.reconnect ? null : 1,
    retryStrategy: options.reconnect
      ? (attempt: number) => Math.min(attempt * 100, MAX_RECONNECT_DELAY_MS)
      : () => null,
  });

  // ioredis rejects connect() with "Connection is closed." only; the error event has the cause.
  let lastError: Error | undefined;
  redis.on('error', (err: Error) => {
    lastError = err;
    options.logger.warn({ err, component: 'redis-connection' }, 'redis connection error');
  });

  try {
    await redis.connect();
  } catch (err) {
    // A connection that has ended needs no disconnect(), which would arm a 2 s timer of ioredis.
    if (redis.status !== 'end') {
      redis.disconnect();
    }
    const cause = lastError ?? err;
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new CommandFailedError(`cannot connect to Redis at ${redactUrl(url)}: ${reason}`, {
      cause,
    });
  }
  return redis;
}

/** Closes a connection with QUIT, or drops it when the server is gone. */
export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === 'end') {
    return;
  }
  try {
    await redis.quit();
  } catch {
    redis.disconnect();
  }
}
