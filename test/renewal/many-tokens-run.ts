// One run of many tokens on one renewal queue: a mock with one client per token, one cache per
// client, every token fetched once, then one worker renews them all. many-tokens.test.ts runs it
// with looser timing, and many-tokens.ts runs it and prints the report. It must not import vitest.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTokenCache, quiqup, type TokenCache } from '@tokenfleet/core';
import { startMockOAuthServer } from '@tokenfleet/mock-oauth';
import { createRenewalQueue, startRenewalWorker } from '@tokenfleet/refresher';
import { Redis } from 'ioredis';
import { deleteKeysMatching, mockClients } from './renewal-fixture.js';

export interface ManyTokensOptions {
  redisUrl: string;
  /** Tokens, one mock client each. */
  count: number;
  /** Token lifetime at the mock, in seconds. */
  expiresIn: number;
  /** The caches' `skewMs`. */
  skewMs: number;
  /** The caches' `refreshAheadMs`: the time each renewal job has before the stored expiry. */
  refreshAheadMs: number;
  /** Renewal jobs that the worker runs at the same time. */
  concurrency: number;
  /** Initial token fetches in flight at the same time, as pods starting up. */
  fetchConcurrency: number;
}

/**
 * Settings of the script and the test. A 6 s token is stored for 5.8 s and its job is due 2 s
 * before that, so each token is renewed 3.8 s after its fetch. While all first renewals fall
 * within 3.8 s of each other, no token is renewed twice before the last one is renewed once.
 */
export const MANY_TOKENS_SETTINGS = Object.freeze({
  expiresIn: 6,
  skewMs: 200,
  refreshAheadMs: 2_000,
  concurrency: 100,
  fetchConcurrency: 100,
});

/** Numbers of one run. Durations are in milliseconds, measured on the machine that ran it. */
export interface ManyTokensReport {
  tokens: number;
  /** Token requests at the mock, the initial fetches included, until every token was renewed once. */
  tokenRequests: number;
  /** Token requests beyond one initial fetch per token. */
  renewalRequests: number;
  /** Tokens renewed by their job while the previous token was still active at the mock. */
  renewedInTime: number;
  /** Tokens whose renewal came after the previous token had expired at the mock. */
  renewedLate: number;
  /** Tokens with no renewal by the deadline. */
  notRenewed: number;
  /** Tokens renewed a second time before the last first renewal. */
  renewedTwice: number;
  /** Job results by outcome. */
  outcomes: Record<string, number>;
  /** Time of the initial fetches. */
  fetchMs: number;
  /** Time from the first renewal to the last first renewal. */
  renewalWindowMs: number;
  /** Largest time by which a job started after its due time. */
  maxLagMs: number;
}

/** Runs the scenario and closes everything it opened, also when it fails. */
export async function runManyTokens(options: ManyTokensOptions): Promise<ManyTokensReport> {
  const unique = randomBytes(4).toString('hex');
  const keyPrefix = `tftest:renewal-many:${unique}`;
  const queueName = `renewal-many-${unique}`;
  const queuePrefix = `{tftest-renewal-${unique}}`;
  const clients = mockClients(options.count);
  const mock = await startMockOAuthServer({ expiresIn: options.expiresIn, clients });
  const redis = new Redis(options.redisUrl);
  const queue = createRenewalQueue({ connection: redis, queueName, prefix: queuePrefix });
  const caches: TokenCache[] = clients.map((client) =>
    createTokenCache({
      redis,
      provider: quiqup({
        environment: 'staging',
        baseUrl: mock.url,
        clientId: client.clientId,
        clientSecret: client.clientSecret,
      }),
      keyPrefix,
      skewMs: options.skewMs,
      refreshAheadMs: options.refreshAheadMs,
      renewal: queue,
    }),
  );
  const worker = startRenewalWorker({
    connection: redis,
    caches,
    queueName,
    prefix: queuePrefix,
    concurrency: options.concurrency,
    shutdownTimeoutMs: 1_000,
  });

  try {
    await worker.waitUntilReady();
    return await measure(options, caches, mock, worker);
  } finally {
    await worker.close();
    await Promise.allSettled(caches.map((cache) => cache.close()));
    await queue.close();
    await deleteKeysMatching(redis, `${keyPrefix}:*`);
    await deleteKeysMatching(redis, `${queuePrefix}:*`);
    await redis.quit();
    await mock.close();
  }
}

async function measure(
  options: ManyTokensOptions,
  caches: TokenCache[],
  mock: Awaited<ReturnType<typeof startMockOAuthServer>>,
  worker: ReturnType<typeof startRenewalWorker>,
): Promise<ManyTokensReport> {
  const initialTokens = new Map<TokenCache, string>();
  const renewals = new Map<TokenCache, number>();
  let renewedInTime = 0;
  let renewedLate = 0;
  let firstRenewalAt: number | undefined;
  let lastFirstRenewalAt = 0;
  let renewedTwice = 0;
  const outcomes: Record<string, number> = {};
  let maxLagMs = 0;

  worker.bullWorker.on('completed', (job, result) => {
    outcomes[result.outcome] = (outcomes[result.outcome] ?? 0) + 1;
    const dueAt = job.data.dueAt;
    if (typeof dueAt === 'number' && job.processedOn !== undefined) {
      maxLagMs = Math.max(maxLagMs, job.processedOn - dueAt);
    }
  });
  for (const cache of caches) {
    cache.on('refreshed', (event) => {
      if (event.reason !== 'renewal' || event.origin !== 'local') {
        return;
      }
      const count = (renewals.get(cache) ?? 0) + 1;
      renewals.set(cache, count);
      if (count > 1) {
        renewedTwice += 1;
        return;
      }
      // The mock's clock decides: was the token that this renewal replaces still valid?
      if (mock.isTokenActive(initialTokens.get(cache) ?? '')) {
        renewedInTime += 1;
      } else {
        renewedLate += 1;
      }
      const now = performance.now();
      firstRenewalAt ??= now;
      lastFirstRenewalAt = now;
    });
  }

  const fetchStartedAt = performance.now();
  await forEachLimited(caches, options.fetchConcurrency, async (cache) => {
    initialTokens.set(cache, await cache.getToken());
  });
  const fetchMs = performance.now() - fetchStartedAt;

  // Every job is due within one lifetime of its fetch, and two more lifetimes are the deadline.
  const deadline = performance.now() + fetchMs + 3 * options.expiresIn * 1_000;
  while (renewedInTime + renewedLate < caches.length && performance.now() < deadline) {
    await sleep(20);
  }
  await worker.close();

  const { tokenRequests } = mock.counts();
  return {
    tokens: caches.length,
    tokenRequests,
    renewalRequests: tokenRequests - caches.length,
    renewedInTime,
    renewedLate,
    notRenewed: caches.length - renewedInTime - renewedLate,
    renewedTwice,
    outcomes,
    fetchMs: Math.round(fetchMs),
    renewalWindowMs: Math.round(lastFirstRenewalAt - (firstRenewalAt ?? lastFirstRenewalAt)),
    maxLagMs,
  };
}

/** Runs `action` for every item with at most `limit` in flight. */
async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  action: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next]!;
      next += 1;
      await action(item);
    }
  });
  await Promise.all(lanes);
}
