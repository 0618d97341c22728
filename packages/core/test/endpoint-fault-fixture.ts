import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { type MockOAuthServer, startMockOAuthServer } from '@tokenfleet/mock-oauth';
import { Redis } from 'ioredis';
import { type Logger, pino } from 'pino';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import {
  createTokenCache,
  quiqup,
  type TokenCache,
  type TokenCacheEvents,
  type TokenCacheOptions,
  type TokenProvider,
} from '../src/index.js';

/** Shared helpers of the token endpoint fault tests: a mock server, Redis and a log capture. */

export const redisUrl = process.env.TOKENFLEET_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export const CLIENT_ID = 'fault-client';

/** Random per run, so that finding it in the captured logs cannot be a coincidence. */
export const CLIENT_SECRET = `fault-secret-${randomUUID()}`;

/** Retries of a transient fault, with back-offs short enough for tests. */
export const TEST_RETRY = Object.freeze({ attempts: 3, baseDelayMs: 10, maxDelayMs: 40 });

/** A bearer credential in the RFC 6750 `b64token` syntax, as it would appear in a header. */
const BEARER_VALUE = /Bearer\s+[A-Za-z0-9\-._~+/]+=*/;

/** HTTP Basic credentials, base64 of `id:secret`, as a server that echoes headers would show. */
const BASIC_VALUE = /Basic\s+[A-Za-z0-9+/]{8,}=*/;

/** Mock tokens are 32 random bytes in hex. */
const HEX_64 = /[0-9a-f]{64}/g;

/** A pino logger at level `trace` that writes every line into memory. */
export interface LogCapture {
  logger: Logger;
  text(): string;
}

export function createLogCapture(): LogCapture {
  const chunks: string[] = [];
  const logger = pino({ level: 'trace' }, { write: (chunk: string) => void chunks.push(chunk) });
  return { logger, text: () => chunks.join('') };
}

/**
 * Creates a `fetch` for the providers that records every `access_token` value the token endpoint
 * sent, including tokens in responses that the cache rejects.
 */
export function createRecordingFetch(tokens: Set<string>): typeof fetch {
  return async (input, init) => {
    const response = await globalThis.fetch(input, init);
    const text = await response
      .clone()
      .text()
      .catch(() => '');
    for (const match of text.matchAll(/"access_token"\s*:\s*"([^"]+)"/g)) {
      tokens.add(match[1] as string);
    }
    return response;
  };
}

/**
 * Lists what `text` leaks, by description only, so that a failed assertion prints no secret. It
 * looks for the client secret, every token of `tokens`, and any `Bearer` or `Basic` credential.
 * It also hashes every run of 64 hex characters to find tokens the mock issued.
 */
export function findLeaks(
  text: string,
  tokens: Iterable<string>,
  issuedTokenHashes: ReadonlySet<string>,
): string[] {
  const leaks: string[] = [];
  if (text.includes(CLIENT_SECRET)) {
    leaks.push('the client secret');
  }
  let index = 0;
  for (const token of tokens) {
    index += 1;
    if (token.length > 0 && text.includes(token)) {
      leaks.push(`recorded access token #${index}`);
    }
  }
  for (const match of text.matchAll(HEX_64)) {
    const hash = createHash('sha256').update(match[0]).digest('hex');
    if (issuedTokenHashes.has(hash)) {
      leaks.push('an access token issued by the mock');
    }
  }
  if (BEARER_VALUE.test(text)) {
    leaks.push('a Bearer credential');
  }
  if (BASIC_VALUE.test(text)) {
    leaks.push('a Basic credential');
  }
  return leaks;
}

export function uniquePrefix(name: string): string {
  return `tf-fault-${name}-${randomUUID().slice(0, 8)}`;
}

/** Options of a test cache: everything but the provider, which the fixture builds. */
export type CacheOverrides = Partial<Omit<TokenCacheOptions, 'provider'>> & {
  provider?: TokenProvider;
  clientSecret?: string;
};

export interface FaultFixture {
  /** The test's own connection for reading keys. Caches get connections of their own. */
  readonly redis: Redis;
  readonly server: MockOAuthServer;
  readonly capture: LogCapture;
  /** Every access token the endpoint sent or a cache returned. */
  readonly tokens: Set<string>;
  /** A Quiqup provider for the mock, with the recording fetch. */
  provider(clientSecret?: string): TokenProvider;
  /** A cache on its own Redis connection, closed after the test. */
  newCache(keyPrefix: string, overrides?: CacheOverrides): TokenCache;
  /** Calls `getToken()` and records the token it returns. */
  getToken(cache: TokenCache): Promise<string>;
  tokenKey(keyPrefix: string, cache: TokenCache): string;
  cooldownKey(keyPrefix: string, cache: TokenCache): string;
  /** Returns what the captured logs leak, by description. */
  leaks(): string[];
}

/**
 * Registers the hooks of one test file: a mock server and a Redis connection for the file, caches
 * closed and faults cleared after each test, and a scan of the captured logs after the file.
 */
export function useFaultFixture(): FaultFixture {
  const capture = createLogCapture();
  const tokens = new Set<string>();
  const recordingFetch = createRecordingFetch(tokens);
  const caches: TokenCache[] = [];
  let redis: Redis | undefined;
  let server: MockOAuthServer | undefined;

  const fixture: FaultFixture = {
    get redis() {
      if (redis === undefined) {
        throw new Error('the fault fixture is not started');
      }
      return redis;
    },
    get server() {
      if (server === undefined) {
        throw new Error('the fault fixture is not started');
      }
      return server;
    },
    capture,
    tokens,
    provider(clientSecret = CLIENT_SECRET) {
      return quiqup({
        environment: 'staging',
        baseUrl: fixture.server.url,
        clientId: CLIENT_ID,
        clientSecret,
        fetch: recordingFetch,
      });
    },
    newCache(keyPrefix, overrides = {}) {
      const { provider, clientSecret, ...options } = overrides;
      const cache = createTokenCache({
        redis: redisUrl,
        keyPrefix,
        provider: provider ?? fixture.provider(clientSecret),
        logger: capture.logger,
        retry: TEST_RETRY,
        ...options,
      });
      caches.push(cache);
      return cache;
    },
    async getToken(cache) {
      const token = await cache.getToken();
      tokens.add(token);
      return token;
    },
    tokenKey: (keyPrefix, cache) => `${keyPrefix}:{${cache.id}}:token`,
    cooldownKey: (keyPrefix, cache) => `${keyPrefix}:{${cache.id}}:cooldown`,
    leaks() {
      const issued = new Set(fixture.server.issuedTokens().map((info) => info.tokenHash));
      return findLeaks(capture.text(), tokens, issued);
    },
  };

  beforeAll(async () => {
    redis = new Redis(redisUrl);
    server = await startMockOAuthServer({
      preset: 'staging',
      clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET }],
    });
  });

  afterEach(async () => {
    await Promise.all(caches.splice(0).map((cache) => cache.close()));
    fixture.server.clearFaults();
    fixture.server.resetCounts();
    fixture.server.setExpiresIn(3_600);
  });

  afterAll(async () => {
    // Caches made in other afterAll hooks are closed here, before their logs are scanned.
    await Promise.all(caches.splice(0).map((cache) => cache.close()));
    const leaks = server === undefined ? [] : fixture.leaks();
    await server?.close();
    await redis?.quit();
    expect(leaks).toEqual([]);
  });

  return fixture;
}

/**
 * Options that put a token into its refresh-ahead window once 55% of its life has passed: no
 * skew, and a margin of the whole life, which the cache cuts to 90%, of which pods act on the
 * later half.
 */
export const EARLY_REFRESH_AHEAD = Object.freeze({
  skewMs: 0,
  refreshAheadMs: (lifetimeMs: number) => lifetimeMs,
});

/**
 * Lifetime of the token that {@link tokenInRefreshAheadWindow} fetches, in seconds: its window of
 * 1.35 s leaves room for three failed attempts on a loaded machine.
 */
const SHORT_TOKEN_SECONDS = 3;

/**
 * Fetches a 3 s token through `cache` (made with {@link EARLY_REFRESH_AHEAD}), sleeps until it is
 * inside its refresh-ahead window, resets the request counters and returns the token.
 */
export async function tokenInRefreshAheadWindow(
  fixture: FaultFixture,
  cache: TokenCache,
): Promise<string> {
  fixture.server.setExpiresIn(SHORT_TOKEN_SECONDS);
  const info = await cache.getTokenInfo();
  fixture.tokens.add(info.token);

  // The window opens when 45% of the life is left (half of the 90% margin).
  await sleep(Math.ceil(info.remainingMs * 0.55) + 50);
  fixture.server.resetCounts();
  return info.token;
}

/** Resolves once `cache` has emitted `event` `count` times, counting from this call. */
export function waitForEvents(
  cache: TokenCache,
  event: keyof TokenCacheEvents,
  count: number,
  timeoutMs = 5_000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = 0;
    const onEvent = (): void => {
      seen += 1;
      if (seen >= count) {
        clearTimeout(timer);
        cache.off(event, onEvent);
        resolve();
      }
    };
    const timer = setTimeout(() => {
      cache.off(event, onEvent);
      reject(new Error(`saw ${seen} of ${count} "${event}" events within ${timeoutMs} ms`));
    }, timeoutMs);
    cache.on(event, onEvent);
  });
}

/** Outcome of one call in {@link callRepeatedly}. */
export type CallOutcome = { token: string } | { error: unknown };

/**
 * Calls `getToken()` on every cache in turn, `callers` at a time per cache, with `pauseMs`
 * between calls, until `durationMs` has passed. Returns every outcome and the time it ran.
 */
export async function callRepeatedly(
  caches: readonly TokenCache[],
  durationMs: number,
  options: { callers?: number; pauseMs?: number } = {},
): Promise<{ outcomes: CallOutcome[]; elapsedMs: number }> {
  const { callers = 2, pauseMs = 20 } = options;
  const outcomes: CallOutcome[] = [];
  const startedAt = performance.now();

  const caller = async (cache: TokenCache): Promise<void> => {
    while (performance.now() - startedAt < durationMs) {
      try {
        outcomes.push({ token: await cache.getToken() });
      } catch (error) {
        outcomes.push({ error });
      }
      await sleep(pauseMs);
    }
  };

  await Promise.all(
    caches.flatMap((cache) => Array.from({ length: callers }, () => caller(cache))),
  );
  return { outcomes, elapsedMs: performance.now() - startedAt };
}

/** The errors among `outcomes`. */
export function errorsOf(outcomes: readonly CallOutcome[]): unknown[] {
  return outcomes.flatMap((outcome) => ('error' in outcome ? [outcome.error] : []));
}

/** The tokens among `outcomes`. */
export function tokensOf(outcomes: readonly CallOutcome[]): string[] {
  return outcomes.flatMap((outcome) => ('token' in outcome ? [outcome.token] : []));
}
