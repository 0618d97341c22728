import { createTokenCache, quiqup, type TokenCache } from '@tokenfleet/core';
import { createRenewalQueue, type RenewalQueue } from '@tokenfleet/refresher';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { ProviderConfig, RedisConfig } from './config.js';
import { closeRedis, connectRedis } from './redis-connection.js';

export interface TokenSessionOptions {
  redis: RedisConfig;
  provider: ProviderConfig;
  /** Whether each refresh adds its renewal job to the BullMQ queue `redis.queueName`. */
  renewal: boolean;
  /** Whether the Redis connection reconnects after a loss; true for long-running commands. */
  reconnect: boolean;
  logger: Logger;
}

/** A token cache with the connection and renewal queue it uses; `close()` closes all three. */
export interface TokenSession {
  cache: TokenCache;
  redis: Redis;
  renewalQueue: RenewalQueue | undefined;
  close(): Promise<void>;
}

/** Connects to Redis and creates the cache of the configured Quiqup client. */
export async function openTokenSession(options: TokenSessionOptions): Promise<TokenSession> {
  const redis = await connectRedis(options.redis.redisUrl, {
    reconnect: options.reconnect,
    logger: options.logger,
  });

  try {
    return createSession(redis, options);
  } catch (err) {
    // An invalid option of the provider or the cache: the connection is not handed out.
    await closeRedis(redis);
    throw err;
  }
}

function createSession(redis: Redis, options: TokenSessionOptions): TokenSession {
  const provider = quiqup({
    environment: options.provider.environment,
    clientId: options.provider.clientId,
    clientSecret: options.provider.clientSecret,
    ...(options.provider.baseUrl !== undefined && { baseUrl: options.provider.baseUrl }),
  });
  const renewalQueue = options.renewal
    ? createRenewalQueue({
        connection: redis,
        queueName: options.redis.queueName,
        logger: options.logger,
      })
    : undefined;
  const cache = createTokenCache({
    redis,
    provider,
    keyPrefix: options.redis.keyPrefix,
    logger: options.logger,
    ...(renewalQueue !== undefined && { renewal: renewalQueue }),
  });

  return {
    cache,
    redis,
    renewalQueue,
    close: async () => {
      await cache.close();
      await renewalQueue?.close();
      await closeRedis(redis);
    },
  };
}
