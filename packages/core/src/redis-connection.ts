import { type Cluster, Redis } from 'ioredis';
import { pino } from 'pino';
import type { ResolvedTokenCacheOptions } from './options.js';
import { sanitizeRedisError } from './redis-store.js';

/**
 * Redis clients that already carry a cache's error listener. Caches that share a client add one
 * listener in all, because Node warns once an event has more than 10 listeners, and a listener per
 * cache would stay on the caller's client after the cache closed.
 */
const clientsWithErrorListener = new WeakSet<Redis | Cluster>();

/** A token cache's Redis client, and whether the cache opened it and so must close it. */
export interface CacheConnection {
  redis: Redis | Cluster;
  owned: boolean;
}

/** Opens a client for `options.redis` when it is a URL, or takes the caller's client. */
export function connectCacheRedis(options: ResolvedTokenCacheOptions): CacheConnection {
  let connection: CacheConnection;
  if (typeof options.redis === 'string') {
    const redis = new Redis(options.redis, {
      maxRetriesPerRequest: 1,
      commandTimeout: options.redisTimeoutMs,
      connectTimeout: options.redisTimeoutMs,
    });
    connection = { redis, owned: true };
  } else {
    connection = { redis: options.redis, owned: false };
  }
  // A connection error is reported through failed commands; without a listener ioredis would
  // print every reconnect attempt.
  if (!clientsWithErrorListener.has(connection.redis)) {
    clientsWithErrorListener.add(connection.redis);
    const connectionLogger = (options.logger ?? pino({ level: 'silent' })).child({
      component: 'token-cache',
    });
    connection.redis.on('error', (err: Error) => {
      connectionLogger.debug({ err: sanitizeRedisError(err) }, 'redis connection error');
    });
  }
  return connection;
}
