// Secrets and tokens in logs at trace, in errors (JSON.stringify, util.inspect, cause chains) and
// in Redis values, across the paths a fleet runs through.
import { inspect } from 'node:util';
import {
  createAuthorizedFetch,
  createTokenCache,
  type TokenCache,
  type TokenCacheOptions,
} from '@tokenfleet/core';
import { type MockOAuthServer, startMockOAuthServer } from '@tokenfleet/mock-oauth';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CLIENT_SECRET,
  captureTraceLogs,
  mockProvider,
  type SpawnedRedisServerLike,
  spawnRedisServer,
  uniquePrefix,
} from './review-helpers.js';

const REDIS_PASSWORD = 'review-redis-password-7f3a';
const LEAKED_TOKEN = 'leak-me-access-token-0123456789';

let redisServer: SpawnedRedisServerLike;
let redis: Redis;
let server: MockOAuthServer;
const caches: TokenCache[] = [];

beforeAll(async () => {
  redisServer = await spawnRedisServer({ extraArgs: ['--requirepass', REDIS_PASSWORD] });
  redis = new Redis(redisServer.url, { password: REDIS_PASSWORD });
  server = await startMockOAuthServer({ preset: 'staging' });
});

afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => cache.close()));
  server.clearFaults();
});

afterAll(async () => {
  redis.disconnect();
  await server.close();
  await redisServer.stop();
});

function authedUrl(password = REDIS_PASSWORD): string {
  return redisServer.url.replace('redis://', `redis://:${password}@`);
}

function newCache(overrides: Partial<TokenCacheOptions>): TokenCache {
  const cache = createTokenCache({
    redis: authedUrl(),
    keyPrefix: uniquePrefix('review-secrets'),
    provider: mockProvider(server),
    redisTimeoutMs: 300,
    ...overrides,
  });
  caches.push(cache);
  return cache;
}

/** Every printed form of an error and its cause chain. */
function printed(error: unknown): string {
  const forms: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && depth < 5; depth += 1) {
    forms.push(JSON.stringify(current) ?? '', inspect(current, { depth: 5 }), String(current));
    current = (current as { cause?: unknown }).cause;
  }
  return forms.join('\n');
}

describe('secrets at trace level', () => {
  it('keep every token and secret out of logs, errors and Redis values', async () => {
    const logs = captureTraceLogs();
    const cache = newCache({ logger: logs.logger, retry: { attempts: 2, baseDelayMs: 10 } });
    const errors: unknown[] = [];
    const tokens: string[] = [];
    const capture = (promise: Promise<string>) =>
      promise.then((token) => tokens.push(token)).catch((error: unknown) => errors.push(error));

    await capture(cache.getToken());
    server.setFaults({ resource: { alwaysUnauthorized: true }, times: 1 });
    await createAuthorizedFetch(cache)(server.resourceUrl);
    await capture(cache.getToken());
    server.clearFaults();
    await capture(cache.refresh().then((info) => info.token));

    for (const faults of [
      { overrideFields: { access_token: LEAKED_TOKEN, token_type: 'mac' } },
      { overrideFields: { access_token: LEAKED_TOKEN, expires_in: 'abc' } },
      { status: 500, body: { error: 'server_error', echo: CLIENT_SECRET } },
      { status: 503, htmlBody: `<p>client_secret=${CLIENT_SECRET}</p>` },
    ]) {
      await redis.eval(
        "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end",
        0,
        `*review-secrets*cooldown`,
      );
      server.setFaults(faults);
      await capture(cache.refresh().then((info) => info.token));
    }
    server.clearFaults();

    const wrong = newCache({
      logger: logs.logger,
      provider: mockProvider(server, { clientSecret: 'wrong-secret-5c1d' }),
    });
    await capture(wrong.getToken());

    const values = await redis.eval(
      "local out = {} for _, k in ipairs(redis.call('KEYS', ARGV[1])) do if redis.call('TYPE', k).ok == 'string' then table.insert(out, redis.call('GET', k)) end end return out",
      0,
      '*review-secrets*',
    );
    const haystack = [logs.text(), ...errors.map(printed), JSON.stringify(values)].join('\n');

    expect(tokens.length).toBeGreaterThan(1);
    expect(errors.length).toBeGreaterThanOrEqual(5);
    for (const secret of [CLIENT_SECRET, 'wrong-secret-5c1d', LEAKED_TOKEN, ...tokens]) {
      expect(haystack.includes(secret), `found ${secret.slice(0, 6)}…`).toBe(false);
    }
  }, 30_000);

  // ioredis puts { name, args } of a failed command on its ReplyError; the cache logs connection
  // errors with pino's err serializer, which prints every enumerable field.
  it('keep the Redis password out of the logs when AUTH fails', async () => {
    const logs = captureTraceLogs();
    const cache = newCache({ logger: logs.logger, redis: authedUrl('old-password-9e2b') });
    const degraded: unknown[] = [];
    cache.on('degraded', (event) => degraded.push(event.err));
    await cache.getToken().catch(() => undefined);

    expect(degraded).toHaveLength(1);
    expect(printed(degraded[0])).not.toContain('old-password-9e2b');
    expect(logs.text()).not.toContain('old-password-9e2b');
  });
});
