import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Cluster, Redis } from 'ioredis';
import type { TokenKeys } from './keys.js';

/** A Redis command failed or did not answer in time; the cache degrades instead of failing. */
export class RedisUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RedisUnavailableError';
  }
}

/** What one read of a token returns. */
export interface StoredToken {
  /** The raw record value, or undefined when none is stored. */
  value: string | undefined;
  /** PTTL of the record in milliseconds; only meaningful when `value` is set. */
  pttlMs: number;
  /** The raw cooldown value, or undefined when none is set. */
  cooldown: string | undefined;
  /** PTTL of the cooldown in milliseconds. */
  cooldownPttlMs: number;
  /** Monotonic time (`performance.now()`) just before the read was sent. */
  readStartedAt?: number;
}

interface ScriptDefinition {
  name: string;
  file: string;
  numberOfKeys: number;
}

const SCRIPTS = {
  readToken: { name: 'tokenfleetReadToken', file: 'read-token-2.lua', numberOfKeys: 2 },
  writeTokenIfNewer: {
    name: 'tokenfleetWriteTokenIfNewer',
    file: 'write-token-if-newer-1.lua',
    numberOfKeys: 1,
  },
  deleteTokenIfHash: {
    name: 'tokenfleetDeleteTokenIfHash',
    file: 'delete-token-if-hash-1.lua',
    numberOfKeys: 1,
  },
} as const satisfies Record<string, ScriptDefinition>;

type ScriptName = (typeof SCRIPTS)[keyof typeof SCRIPTS]['name'];
type ScriptCommand = (...args: Array<string | number>) => Promise<unknown>;

const scriptSources = new Map<string, string>();

function loadScript(file: string): string {
  let source = scriptSources.get(file);
  if (source === undefined) {
    source = readFileSync(new URL(`./lua/${file}`, import.meta.url), 'utf8');
    scriptSources.set(file, source);
  }
  return source;
}

/**
 * Every Redis command of one token: reads, the fenced write, the compare-and-delete, the
 * generation counter and the cooldown. Each command is bounded by `timeoutMs`, whatever the
 * connection's own settings, and fails with `RedisUnavailableError`.
 */
export class RedisTokenStore {
  readonly #redis: Redis | Cluster;
  readonly #keys: TokenKeys;
  readonly #timeoutMs: number;

  constructor(redis: Redis | Cluster, keys: TokenKeys, timeoutMs: number) {
    this.#redis = redis;
    this.#keys = keys;
    this.#timeoutMs = timeoutMs;
    defineScripts(redis);
  }

  /** Reads the record, its PTTL and the cooldown in one round trip. */
  async read(): Promise<StoredToken> {
    const readStartedAt = performance.now();
    const reply = (await this.#run('read token', () =>
      this.#script('tokenfleetReadToken')(this.#keys.token, this.#keys.cooldown),
    )) as [string | null, number, string | null, number];

    return {
      value: reply[0] ?? undefined,
      pttlMs: Number(reply[1]),
      cooldown: reply[2] ?? undefined,
      cooldownPttlMs: Number(reply[3]),
      readStartedAt,
    };
  }

  /** Starts a refresh attempt: increments the fencing counter and returns the new generation. */
  async nextGeneration(): Promise<number> {
    return this.#run('increment generation', () => this.#redis.incr(this.#keys.generation));
  }

  /** Reads the fencing counter, 0 when no refresh was ever attempted. */
  async currentGeneration(): Promise<number> {
    const value = await this.#run('read generation', () => this.#redis.get(this.#keys.generation));
    const generation = Number(value ?? 0);
    return Number.isSafeInteger(generation) ? generation : 0;
  }

  /**
   * Stores `record` when `generation` is newer than the stored one and publishes `message`.
   * Returns whether it was stored, and the generation that Redis holds afterwards.
   */
  async writeIfNewer(
    generation: number,
    record: string,
    pxMs: number,
    message: string,
  ): Promise<{ written: boolean; storedGeneration: number }> {
    const reply = (await this.#run('write token', () =>
      this.#script('tokenfleetWriteTokenIfNewer')(
        this.#keys.token,
        generation,
        record,
        pxMs,
        this.#keys.events,
        message,
      ),
    )) as [number, number];
    return { written: Number(reply[0]) === 1, storedGeneration: Number(reply[1]) };
  }

  /** Deletes the record while it holds the token with SHA-256 `tokenHash`, then publishes. */
  async deleteIfHash(tokenHash: string, message: string): Promise<boolean> {
    const reply = await this.#run('delete token', () =>
      this.#script('tokenfleetDeleteTokenIfHash')(
        this.#keys.token,
        tokenHash,
        this.#keys.events,
        message,
      ),
    );
    return Number(reply) === 1;
  }

  /**
   * Sets the fleet-wide cooldown for `pxMs` milliseconds, then publishes `message` so that pods
   * waiting for the lock holder read the cooldown at once instead of at the end of their wait.
   */
  async setCooldown(value: string, pxMs: number, message: string): Promise<void> {
    await this.#run('set cooldown', () => this.#redis.set(this.#keys.cooldown, value, 'PX', pxMs));
    await this.#run('publish cooldown', () => this.#redis.publish(this.#keys.events, message));
  }

  /**
   * Returns the PTTL of the fleet lock in milliseconds, 0 when nobody holds it, and Infinity for
   * a lock key without expiry (set by hand), which only an operator can clear.
   */
  async lockPttl(): Promise<number> {
    const pttl = await this.#run('read lock ttl', () => this.#redis.pttl(this.#keys.lock));
    if (pttl === -1) {
      return Number.POSITIVE_INFINITY;
    }
    return Math.max(0, pttl);
  }

  #script(name: ScriptName): ScriptCommand {
    const command = (this.#redis as unknown as Record<string, ScriptCommand>)[name];
    if (command === undefined) {
      throw new Error(`redis script ${name} is not defined`);
    }
    return command.bind(this.#redis);
  }

  async #run<T>(what: string, command: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new RedisUnavailableError(
            `redis ${what} timed out after ${this.#timeoutMs} ms (options.redisTimeoutMs)`,
          ),
        );
      }, this.#timeoutMs);
    });

    try {
      return await Promise.race([command(), timeout]);
    } catch (error) {
      if (error instanceof RedisUnavailableError) {
        throw error;
      }
      throw new RedisUnavailableError(`redis ${what} failed`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Registers the Lua scripts on a connection once; ioredis then sends EVALSHA with an EVAL fallback. */
function defineScripts(redis: Redis | Cluster): void {
  const commands = redis as unknown as Record<string, unknown>;
  for (const script of Object.values(SCRIPTS)) {
    if (typeof commands[script.name] !== 'function') {
      redis.defineCommand(script.name, {
        numberOfKeys: script.numberOfKeys,
        lua: loadScript(script.file),
      });
    }
  }
}
