import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { invalidArgType } from './arguments.js';

/** A Redis connection that the caller owns, or a `redis://` / `rediss://` URL to open one from. */
export type RedisConnectionOption = Redis | Cluster | string;

/** A connection this package uses, and whether this package opened it and so must close it. */
export interface OwnedConnection {
  client: Redis | Cluster;
  owned: boolean;
}

/**
 * Returns the caller's client as it is, or opens a client for a URL. `overrides` apply only to a
 * client opened here: the caller's own client keeps its settings.
 */
export function useConnection(
  path: string,
  connection: RedisConnectionOption,
  overrides: RedisOptions = {},
): OwnedConnection {
  if (typeof connection === 'string') {
    return { client: new Redis(connection, overrides), owned: true };
  }
  if (!isRedisClient(connection)) {
    throw invalidArgType(path, 'an ioredis Redis or Cluster client or a redis:// URL', connection);
  }
  return { client: connection, owned: false };
}

/**
 * Opens a new client that this package owns: a duplicate of the caller's client with `overrides`,
 * or a client for a URL.
 */
export function openDedicatedConnection(
  path: string,
  connection: RedisConnectionOption,
  overrides: RedisOptions,
): Redis | Cluster {
  if (typeof connection === 'string') {
    return new Redis(connection, overrides);
  }
  if (!isRedisClient(connection)) {
    throw invalidArgType(path, 'an ioredis Redis or Cluster client or a redis:// URL', connection);
  }
  if (isCluster(connection)) {
    const redisOptions = { ...connection.options.redisOptions, ...overrides };
    return connection.duplicate(undefined, { redisOptions });
  }
  return connection.duplicate(overrides);
}

/** Closes a client: QUIT when it is connected, else a plain disconnect so nothing waits for a reconnect. */
export async function closeConnection(client: Redis | Cluster): Promise<void> {
  if (client.status === 'end') {
    return;
  }
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  try {
    await client.quit();
  } catch {
    client.disconnect();
  }
}

// `isCluster` is set by ioredis itself and, unlike `instanceof`, works across copies of ioredis.
function isCluster(client: Redis | Cluster): client is Cluster {
  return (client as { isCluster?: boolean }).isCluster === true;
}

function isRedisClient(value: unknown): value is Redis | Cluster {
  return value instanceof Redis || value instanceof Cluster || hasRedisMethods(value);
}

// A client from another copy of ioredis fails `instanceof`, so its methods decide.
function hasRedisMethods(value: unknown): boolean {
  if (value === null || typeof value !== 'object') {
    return false;
  }
  const candidate = value as Record<string, unknown>;
  return ['duplicate', 'disconnect', 'quit', 'ping'].every(
    (name) => typeof candidate[name] === 'function',
  );
}
