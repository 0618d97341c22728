import { Writable } from 'node:stream';
import { inspect } from 'node:util';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type SpawnedRedisServer,
  spawnRedisServer,
  uniquePrefix,
  waitFor,
} from '../../../test/harness/index.js';
import {
  createTokenCache,
  isTokenfleetError,
  quiqup,
  RedisUnavailableError,
  sanitizeRedisError,
  TokenfleetError,
} from '../src/index.js';
import { buildTokenKeys, type TokenKeys } from '../src/keys.js';
import { RedisTokenStore } from '../src/redis-store.js';

/** The password of the spawned server's default user. Each test user below has its own. */
const ADMIN_PASSWORD = 'admin-password-4c1e7a';
const USER_PASSWORD = 'user-password-91b3f0';
const WRONG_PASSWORD = 'wrong-password-d25e68';
const TOKEN_ID = '0123456789abcdef0123456789abcdef';
const REDIS_TIMEOUT_MS = 2_000;

let server: SpawnedRedisServer;
let admin: Redis;
const clients: Redis[] = [];

beforeAll(async () => {
  server = await spawnRedisServer({ extraArgs: ['--requirepass', ADMIN_PASSWORD] });
  admin = new Redis(server.url, { password: ADMIN_PASSWORD });
  const acl = (...rules: string[]) => admin.call('ACL', 'SETUSER', ...rules);
  await acl('nochannels', 'on', `>${USER_PASSWORD}`, '~*', 'resetchannels', '+@all');
  await acl('nopubsub', 'on', `>${USER_PASSWORD}`, '~*', '&*', '+@all', '-@pubsub');
  await acl('noincr', 'on', `>${USER_PASSWORD}`, '~*', '&*', '+@all', '-incr');
  await acl('nokeys', 'on', `>${USER_PASSWORD}`, 'resetkeys', '&*', '+@all');
});

afterAll(async () => {
  for (const client of clients.splice(0)) {
    client.disconnect();
  }
  admin.disconnect();
  await server.stop();
});

/** Connects as `username`, keeps every error the client emits, and leaves closing to afterAll. */
function connectAs(username: string | undefined, password: string | undefined) {
  const emitted: Error[] = [];
  const client = new Redis(server.url, { username, password, maxRetriesPerRequest: 1 });
  client.on('error', (err: Error) => emitted.push(err));
  clients.push(client);
  return { client, emitted };
}

function storeFor(client: Redis): { store: RedisTokenStore; keys: TokenKeys; prefix: string } {
  const prefix = uniquePrefix('redis-errors');
  const keys = buildTokenKeys(prefix, TOKEN_ID);
  return { store: new RedisTokenStore(client, keys, REDIS_TIMEOUT_MS), keys, prefix };
}

async function rejection(promise: Promise<unknown>): Promise<RedisUnavailableError> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(RedisUnavailableError);
  return error as RedisUnavailableError;
}

/** Joins every printed form of an error and its cause chain, as logs and error reports show it. */
function printed(error: unknown): string {
  const forms: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && depth < 5; depth += 1) {
    forms.push(JSON.stringify(current) ?? '', inspect(current, { depth: 5 }), String(current));
    current = (current as { cause?: unknown }).cause;
  }
  return forms.join('\n');
}

/** Creates a pino logger at trace that keeps its output as text. */
function captureLogs() {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString('utf8'));
      callback();
    },
  });
  return { logger: pino({ level: 'trace' }, destination), text: () => chunks.join('') };
}

describe('sanitizeRedisError', () => {
  describe('when ioredis attached the command', () => {
    const reply = Object.assign(new Error('WRONGPASS invalid username-password pair'), {
      name: 'ReplyError',
      command: { name: 'auth', args: ['app', WRONG_PASSWORD] },
    });

    it('keeps the name, message, code and command name', () => {
      const copy = sanitizeRedisError(reply);

      expect(copy).toBeInstanceOf(Error);
      expect(copy.name).toBe('ReplyError');
      expect(copy.message).toBe('WRONGPASS invalid username-password pair');
      expect(copy.code).toBe('WRONGPASS');
      expect(copy.command).toBe('auth');
    });

    it('drops the command arguments from every printed form', () => {
      const copy = sanitizeRedisError(reply);

      expect(printed(copy)).not.toContain(WRONG_PASSWORD);
      expect(Object.keys(copy).sort()).toEqual(['code', 'command', 'name']);
    });

    it('keeps the stack frames under the cleaned message', () => {
      const copy = sanitizeRedisError(reply);

      expect(copy.stack?.split('\n')[0]).toBe(
        'ReplyError: WRONGPASS invalid username-password pair',
      );
      expect(copy.stack?.split('\n')[1]).toMatch(/^ {4}at /);
    });
  });

  describe('when the error came from the socket', () => {
    it('keeps the system error code', () => {
      const socketError = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), {
        code: 'ECONNREFUSED',
        errno: -111,
        address: '127.0.0.1',
      });

      const copy = sanitizeRedisError(socketError);

      expect(copy.code).toBe('ECONNREFUSED');
      expect(copy.message).toBe('connect ECONNREFUSED 127.0.0.1:9');
      expect(copy.command).toBeUndefined();
    });
  });

  describe('when a message quotes a Redis URL with credentials', () => {
    it('masks the user info', () => {
      const copy = sanitizeRedisError(
        new Error(`cannot reach redis://app:${WRONG_PASSWORD}@cache.internal:6379/0`),
      );

      expect(copy.message).toBe('cannot reach redis://[redacted]@cache.internal:6379/0');
      expect(printed(copy)).not.toContain(WRONG_PASSWORD);
    });
  });

  describe('when the value is not an error', () => {
    it('wraps a string', () => {
      const copy = sanitizeRedisError('ERR something');

      expect(copy.name).toBe('Error');
      expect(copy.message).toBe('ERR something');
      expect(copy.code).toBe('ERR');
    });
  });
});

describe('RedisUnavailableError', () => {
  it('is a tokenfleet error with a stable code', () => {
    const error = new RedisUnavailableError('redis read token failed');

    expect(error).toBeInstanceOf(TokenfleetError);
    expect(error.code).toBe('TOKENFLEET_REDIS_UNAVAILABLE');
    expect(error.name).toBe('RedisUnavailableError');
    expect(error.redisCode).toBeUndefined();
  });

  it('keeps only a sanitized copy of its cause', () => {
    const reply = Object.assign(new Error('NOAUTH Authentication required.'), {
      name: 'ReplyError',
      command: { name: 'auth', args: [WRONG_PASSWORD] },
    });

    const error = new RedisUnavailableError('redis read token failed', { cause: reply });

    expect(error.cause).not.toBe(reply);
    expect(error.redisCode).toBe('NOAUTH');
    expect((error.cause as Error).message).toBe('NOAUTH Authentication required.');
    expect(printed(error)).not.toContain(WRONG_PASSWORD);
  });
});

describe('RedisTokenStore errors', () => {
  describe('when the password is wrong', () => {
    it('says to check the credentials and leaks no password', async () => {
      const { client, emitted } = connectAs('nochannels', WRONG_PASSWORD);
      const { store } = storeFor(client);

      const error = await rejection(store.read());

      expect(error.code).toBe('TOKENFLEET_REDIS_UNAVAILABLE');
      expect(error.redisCode).toBe('WRONGPASS');
      expect(error.message).toBe(
        'redis read token failed (WRONGPASS invalid username-password pair or user is disabled.): Redis rejected the login, so check the user name and password in the Redis URL or the ioredis options',
      );
      expect(printed(error)).not.toContain(WRONG_PASSWORD);
      // The raw ioredis error does hold it, which is why the cause is a copy.
      expect(emitted.map((err) => JSON.stringify(err)).join('\n')).toContain(WRONG_PASSWORD);
    });

    it('logs no password through pino', async () => {
      const { client } = connectAs('nochannels', WRONG_PASSWORD);
      const { store } = storeFor(client);
      const logs = captureLogs();

      const error = await rejection(store.read());
      logs.logger.warn({ err: error }, 'redis unavailable');

      expect(logs.text()).toContain('"code":"TOKENFLEET_REDIS_UNAVAILABLE"');
      expect(logs.text()).toContain('"redisCode":"WRONGPASS"');
      expect(logs.text()).not.toContain(WRONG_PASSWORD);
    });
  });

  describe('when no password is sent', () => {
    it('says to check the credentials', async () => {
      const { client } = connectAs(undefined, undefined);
      const { store } = storeFor(client);

      const error = await rejection(store.read());

      expect(error.redisCode).toBe('NOAUTH');
      expect(error.message).toBe(
        'redis read token failed (NOAUTH Authentication required.): Redis rejected the login, so check the user name and password in the Redis URL or the ioredis options',
      );
    });
  });

  describe('when the user has no channel permission', () => {
    it('names the channel rule for PUBLISH in the write script', async () => {
      const { client } = connectAs('nochannels', USER_PASSWORD);
      const { store, keys, prefix } = storeFor(client);

      const generation = await store.nextGeneration();
      const error = await rejection(store.writeIfCurrent(generation, '{"v":1}', 60_000, '{}'));

      // Redis 7.0 reports an ACL rejection inside a script as ERR, later versions as NOPERM.
      expect(['ERR', 'NOPERM']).toContain(error.redisCode);
      expect(error.message).toMatch(/^redis write token failed \(.+\): /);
      expect(
        error.message.endsWith(
          `: the Redis user has no ACL permission for channel ${keys.events}, which tokenfleet needs for PUBLISH and SUBSCRIBE, so grant it with the ACL rule "&${prefix}:*"`,
        ),
      ).toBe(true);
      expect(printed(error)).not.toContain(USER_PASSWORD);
    });

    it('names the channel rule for a direct PUBLISH', async () => {
      const { client } = connectAs('nochannels', USER_PASSWORD);
      const { store, keys, prefix } = storeFor(client);

      const error = await rejection(store.setCooldown('{}', 1_000, '{}'));

      expect(error.redisCode).toBe('NOPERM');
      expect(error.message).toBe(
        `redis publish cooldown failed (NOPERM this user has no permissions to access one of the channels used as arguments): the Redis user has no ACL permission for channel ${keys.events}, which tokenfleet needs for PUBLISH and SUBSCRIBE, so grant it with the ACL rule "&${prefix}:*"`,
      );
    });
  });

  describe('when the user may not run a command', () => {
    it('names the command and its rule', async () => {
      const { client } = connectAs('nopubsub', USER_PASSWORD);
      const { store } = storeFor(client);

      const error = await rejection(store.setCooldown('{}', 1_000, '{}'));

      expect(error.redisCode).toBe('NOPERM');
      expect(error.message).toBe(
        `redis publish cooldown failed (NOPERM this user has no permissions to run the 'publish' command): the Redis user has no ACL permission for the PUBLISH command, so allow it with "+publish" or its category (tokenfleet uses commands of +@read, +@write, +@scripting and +@pubsub)`,
      );
    });

    it('names the categories for a command inside a script', async () => {
      const { client } = connectAs('nopubsub', USER_PASSWORD);
      const { store } = storeFor(client);

      const generation = await store.nextGeneration();
      const error = await rejection(store.writeIfCurrent(generation, '{"v":1}', 60_000, '{}'));

      expect(error.message).toMatch(/^redis write token failed \(.+\): /);
      expect(
        error.message.endsWith(
          ': the Redis user has no ACL permission for a command inside the write token script (the scripts call TYPE, GET, SET, DEL, PTTL and PUBLISH), so allow the categories +@read, +@write and +@pubsub',
        ),
      ).toBe(true);
    });

    it('names a command outside a script', async () => {
      const { client } = connectAs('noincr', USER_PASSWORD);
      const { store } = storeFor(client);

      const error = await rejection(store.nextGeneration());

      expect(error.message).toBe(
        `redis increment generation failed (NOPERM this user has no permissions to run the 'incr' command): the Redis user has no ACL permission for the INCR command, so allow it with "+incr" or its category (tokenfleet uses commands of +@read, +@write, +@scripting and +@pubsub)`,
      );
    });
  });

  describe('when the user has no key permission', () => {
    it('names the key rule', async () => {
      const { client } = connectAs('nokeys', USER_PASSWORD);
      const { store, prefix } = storeFor(client);

      const error = await rejection(store.currentGeneration());

      expect(error.redisCode).toBe('NOPERM');
      expect(error.message).toBe(
        `redis read generation failed (NOPERM this user has no permissions to access one of the keys used as arguments): the Redis user has no ACL permission for the keys ${prefix}:*, so grant it with the ACL rule "~${prefix}:*"`,
      );
    });
  });
});

describe('TokenCache with Redis credentials that fail', () => {
  it('raises RedisUnavailableError from status()', async () => {
    const url = server.url.replace('redis://', `redis://nochannels:${WRONG_PASSWORD}@`);
    const cache = createTokenCache({
      redis: url,
      keyPrefix: uniquePrefix('redis-errors-status'),
      provider: quiqup({
        environment: 'staging',
        baseUrl: 'http://127.0.0.1:9',
        clientId: 'redis-errors-client',
        clientSecret: 'redis-errors-secret',
      }),
    });

    try {
      const error = await cache.status().then(
        () => undefined,
        (err: unknown) => err,
      );

      expect(isTokenfleetError(error, 'TOKENFLEET_REDIS_UNAVAILABLE')).toBe(true);
      expect((error as RedisUnavailableError).redisCode).toBe('WRONGPASS');
      expect(printed(error)).not.toContain(WRONG_PASSWORD);
    } finally {
      await cache.close();
    }
  });

  it('logs subscriber errors without the password', async () => {
    const logs = captureLogs();
    const url = server.url.replace('redis://', `redis://nochannels:${WRONG_PASSWORD}@`);
    const cache = createTokenCache({
      redis: url,
      keyPrefix: uniquePrefix('redis-errors-subscriber'),
      logger: logs.logger,
      provider: quiqup({
        environment: 'staging',
        baseUrl: 'http://127.0.0.1:9',
        clientId: 'redis-errors-client',
        clientSecret: 'redis-errors-secret',
      }),
    });

    try {
      const subscriberLines = () =>
        logs
          .text()
          .split('\n')
          .filter((line) => line.includes('redis subscribe'));
      await waitFor(() => subscriberLines().length >= 2, {
        description: 'the subscriber error and the failed subscribe in the log',
      });

      for (const line of subscriberLines()) {
        expect(line).toContain('"code":"WRONGPASS"');
        expect(line).not.toContain(WRONG_PASSWORD);
      }
    } finally {
      await cache.close();
    }
  });
});
