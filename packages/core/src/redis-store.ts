import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Cluster, Redis } from 'ioredis';
import { TokenfleetError } from './errors.js';
import type { TokenKeys } from './keys.js';

/**
 * A Redis command failed or got no reply in time. The cache degrades instead of failing, and
 * `status()` raises it. `cause` is a copy made by {@link sanitizeRedisError}, never the client's
 * own error, because ioredis attaches the command's arguments to its errors, an AUTH password
 * among them.
 */
export class RedisUnavailableError extends TokenfleetError {
  /**
   * The error code that Redis or the socket returned, such as `NOPERM`, `WRONGPASS` or
   * `ECONNREFUSED`, or `undefined` after a timeout.
   */
  readonly redisCode: string | undefined;

  constructor(message: string, details: { cause?: unknown } = {}) {
    const cause = details.cause === undefined ? undefined : sanitizeRedisError(details.cause);
    super('TOKENFLEET_REDIS_UNAVAILABLE', message, cause === undefined ? undefined : { cause });
    this.redisCode = cause?.code;
  }
}

/** A Redis or connection error reduced to fields that never hold a command argument. */
export interface SanitizedRedisError extends Error {
  /** Redis error prefix (`NOPERM`, `WRONGPASS`, `ERR`) or socket error code (`ECONNREFUSED`). */
  code: string | undefined;
  /** Name of the failed command, such as `evalsha` or `auth`, without its arguments. */
  command: string | undefined;
}

/** Redis error replies start with an upper-case code word: `NOPERM this user has no …`. */
const REPLY_CODE = /^([A-Z][A-Z0-9_]+) /;

/** User info of a `redis://user:password@host` URL, in case a message quotes one. */
const URL_CREDENTIALS = /(rediss?:\/\/)[^@\s/]*@/gi;

/**
 * Copies the name, message, code and command name of an error from ioredis or the socket into a
 * new `Error`. The command's arguments, which can hold an AUTH password or a sealed token, and
 * every other field stay behind, so the copy is safe to log and to keep as a `cause`.
 */
export function sanitizeRedisError(err: unknown): SanitizedRedisError {
  const source = (typeof err === 'object' && err !== null ? err : {}) as {
    name?: unknown;
    message?: unknown;
    code?: unknown;
    stack?: unknown;
    command?: { name?: unknown };
  };
  const name = typeof source.name === 'string' ? source.name : 'Error';
  const rawMessage = typeof source.message === 'string' ? source.message : String(err);
  const message = rawMessage.replace(URL_CREDENTIALS, '$1[redacted]@');
  const code =
    typeof source.code === 'string' || typeof source.code === 'number'
      ? String(source.code)
      : REPLY_CODE.exec(message)?.[1];
  const command = typeof source.command?.name === 'string' ? source.command.name : undefined;

  const copy = new Error(message) as SanitizedRedisError;
  copy.name = name;
  copy.code = code;
  copy.command = command;
  // Keep the original frames under a first line rebuilt from the cleaned message.
  const frames = typeof source.stack === 'string' ? source.stack.split('\n').filter(isFrame) : [];
  copy.stack = [`${name}: ${message}`, ...frames].join('\n');
  return copy;
}

function isFrame(line: string): boolean {
  return line.startsWith('    at ');
}

/** The result of one read of a token. */
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
  writeTokenIfCurrent: {
    name: 'tokenfleetWriteTokenIfCurrent',
    file: 'write-token-if-current-2.lua',
    numberOfKeys: 2,
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
   * Stores `record` when `generation` is still the newest refresh attempt, and publishes
   * `message`. Returns whether it was stored, and the counter's generation.
   */
  async writeIfCurrent(
    generation: number,
    record: string,
    pxMs: number,
    message: string,
  ): Promise<{ written: boolean; storedGeneration: number }> {
    const reply = (await this.#run('write token', () =>
      this.#script('tokenfleetWriteTokenIfCurrent')(
        this.#keys.token,
        this.#keys.generation,
        generation,
        record,
        pxMs,
        this.#keys.events,
        message,
      ),
    )) as [number, number];
    return { written: Number(reply[0]) === 1, storedGeneration: Number(reply[1]) };
  }

  /** Deletes the record while it contains the token with SHA-256 `tokenHash`, then publishes. */
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
   * Returns the PTTL of the fleet lock in milliseconds, 0 when the lock is free, and Infinity for
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
      const cause = sanitizeRedisError(error);
      throw new RedisUnavailableError(describeRedisFailure(what, cause, this.#keys), { cause });
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

/**
 * Builds the message of a failed Redis command: what failed, the Redis reply, and for a rejected
 * login or a missing ACL permission what an operator has to change. Redis 7.0 reports an ACL
 * rejection inside a script with the code `ERR` and its own wording, so the checks match the
 * wording of both forms.
 */
function describeRedisFailure(what: string, error: SanitizedRedisError, keys: TokenKeys): string {
  const failed = `redis ${what} failed (${error.message})`;
  const prefix = keys.token.slice(0, keys.token.indexOf(':{'));
  const text = error.message;

  if (error.code === 'WRONGPASS' || error.code === 'NOAUTH') {
    return `${failed}: Redis rejected the login, so check the user name and password in the Redis URL or the ioredis options`;
  }
  if (/permissions to access one of the channels|can't publish to the channel/.test(text)) {
    return `${failed}: the Redis user has no ACL permission for channel ${keys.events}, which tokenfleet needs for PUBLISH and SUBSCRIBE, so grant it with the ACL rule "&${prefix}:*"`;
  }
  if (/permissions to access one of the keys|can't access at least one of the keys/.test(text)) {
    return `${failed}: the Redis user has no ACL permission for the keys ${prefix}:*, so grant it with the ACL rule "~${prefix}:*"`;
  }
  const command = /permissions to run the '([^']+)' command/.exec(text)?.[1];
  if (command !== undefined) {
    return `${failed}: the Redis user has no ACL permission for the ${command.toUpperCase()} command, so allow it with "+${command}" or its category (tokenfleet uses commands of +@read, +@write, +@scripting and +@pubsub)`;
  }
  if (/can't run this command or subcommand/.test(text)) {
    return `${failed}: the Redis user has no ACL permission for a command inside the ${what} script (the scripts call TYPE, GET, SET, DEL, PTTL and PUBLISH), so allow the categories +@read, +@write and +@pubsub`;
  }
  if (error.code === 'NOPERM') {
    return `${failed}: the Redis user lacks an ACL permission that tokenfleet needs`;
  }
  return failed;
}
