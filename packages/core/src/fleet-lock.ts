import { createRequire } from 'node:module';
import type { Cluster, Redis } from 'ioredis';
import { RedisUnavailableError } from './redis-store.js';

// redlock 5.0.0-beta.2 ships its .d.ts outside its `exports` map, so TypeScript's NodeNext
// resolution cannot see it. The few members used here are declared below and the CommonJS build
// is loaded; this module is the only one that imports redlock.
interface RedlockExecutionStats {
  readonly votesAgainst: Map<unknown, Error>;
}

interface RedlockLock {
  expiration: number;
  release(): Promise<unknown>;
}

interface RedlockInstance {
  acquire(
    resources: string[],
    durationMs: number,
    settings?: { retryCount?: number },
  ): Promise<RedlockLock>;
}

interface RedlockModule {
  default: new (
    clients: Iterable<Redis | Cluster>,
    settings?: {
      driftFactor?: number;
      retryCount?: number;
      retryDelay?: number;
      retryJitter?: number;
    },
  ) => RedlockInstance;
  ExecutionError: new (
    ...args: never[]
  ) => Error & {
    attempts: ReadonlyArray<Promise<RedlockExecutionStats>>;
  };
  ResourceLockedError: new (...args: never[]) => Error;
}

const redlock = createRequire(import.meta.url)('redlock') as RedlockModule;

/** Share of the lock TTL that Redlock subtracts from a lease's validity for clock drift. */
export const LOCK_DRIFT_FACTOR = 0.01;

/** A held fleet lock. */
export interface LockLease {
  /** Validity left, in milliseconds, by the local clock and Redlock's drift allowance. */
  remainingMs(): number;
  /** Releases the lock; throws when it could not (an expired lease, Redis down). */
  release(): Promise<void>;
}

/**
 * The fleet refresh lock: one holder at a time across every pod. An interface of two calls, so
 * the lock library can be swapped without touching the refresh protocol.
 */
export interface FleetLock {
  /**
   * Tries once to take the lock for `ttlMs`. Returns undefined when another holder has it, and
   * throws when Redis could not be asked.
   */
  tryAcquire(resource: string, ttlMs: number): Promise<LockLease | undefined>;
}

/**
 * A Redlock lock over one Redis, or a quorum of several independent masters. Redlock sets no
 * timeout of its own, so every acquire and release fails after `timeoutMs` milliseconds, also on
 * a connection that queues commands while Redis does not reply.
 */
export function createRedlockFleetLock(
  clients: ReadonlyArray<Redis | Cluster>,
  timeoutMs: number,
): FleetLock {
  // retryCount 0: the cache waits for the holder's `refreshed` message itself instead of polling.
  const instance = new redlock.default(clients, { retryCount: 0, driftFactor: LOCK_DRIFT_FACTOR });

  return {
    async tryAcquire(resource, ttlMs) {
      const acquiring = instance.acquire([resource], ttlMs, { retryCount: 0 });
      let lock: RedlockLock;
      try {
        lock = await withTimeout(acquiring, timeoutMs, 'acquire');
      } catch (error) {
        if (error instanceof LockCommandTimeoutError) {
          // An acquire that succeeds after the timeout would block the fleet until its TTL ends.
          acquiring.then((late) => late.release()).catch(() => {});
          throw new RedisUnavailableError(error.message);
        }
        if (await isHeldByAnother(error)) {
          return undefined;
        }
        throw await toRedisUnavailable(error, 'acquire');
      }

      return {
        remainingMs: () => lock.expiration - Date.now(),
        release: async () => {
          try {
            await withTimeout(lock.release(), timeoutMs, 'release');
          } catch (error) {
            throw await toRedisUnavailable(error, 'release');
          }
        },
      };
    },
  };
}

/** A lock command that Redis did not reply to within the timeout of `createRedlockFleetLock()`. */
/**
 * Turns a Redlock failure into a `RedisUnavailableError`. Redlock's own errors reference the
 * ioredis clients, whose options hold the Redis password, so only the first vote's error is
 * kept, sanitized by `RedisUnavailableError`.
 */
async function toRedisUnavailable(
  error: unknown,
  operation: string,
): Promise<RedisUnavailableError> {
  if (error instanceof LockCommandTimeoutError) {
    return new RedisUnavailableError(error.message);
  }
  let cause: unknown = error;
  if (error instanceof redlock.ExecutionError) {
    const attempts = await Promise.all(error.attempts);
    cause = attempts.flatMap((stats) => [...stats.votesAgainst.values()])[0];
  }
  return new RedisUnavailableError(`redis lock ${operation} failed`, { cause });
}

class LockCommandTimeoutError extends Error {
  constructor(operation: string, timeoutMs: number) {
    super(`redis lock ${operation} timed out after ${timeoutMs} ms (options.redisTimeoutMs)`);
    this.name = 'LockCommandTimeoutError';
  }
}

async function withTimeout<T>(
  promise: Promise<T>,
  timeoutMs: number,
  operation: string,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LockCommandTimeoutError(operation, timeoutMs)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Tells a lock held by another pod apart from a Redis failure in a failed acquire. */
async function isHeldByAnother(error: unknown): Promise<boolean> {
  if (!(error instanceof redlock.ExecutionError)) {
    return false;
  }

  const attempts = await Promise.all(error.attempts);
  const votesAgainst = attempts.flatMap((stats) => [...stats.votesAgainst.values()]);
  return (
    votesAgainst.length > 0 &&
    votesAgainst.every((vote) => vote instanceof redlock.ResourceLockedError)
  );
}
