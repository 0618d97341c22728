// Renewal through the BullMQ queue with short token lifetimes. A refresher in the test process
// renews the token ahead of expiry while four worker processes keep calling the protected
// resource, so no pod sends an expired token and no pod refreshes the token after the first.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { quiqup, type RefreshedEvent } from '@tokenfleet/core';
import {
  DEFAULT_MOCK_OAUTH_OPTIONS,
  type MockOAuthServer,
  startMockOAuthServer,
} from '@tokenfleet/mock-oauth';
import { type Refresher, startRefresher } from '@tokenfleet/refresher';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { killAll, type WorkerProcess } from '../harness/processes.js';
import { uniquePrefix } from '../harness/redis.js';
import { waitFor } from '../harness/wait-for.js';
import type { FleetCacheOptions, FleetWorkerResult } from './fleet-contract.js';
import { deleteKeys, releaseFleet, startFleet } from './fleet-helpers.js';

/** Token lifetime at the mock, in seconds. */
const EXPIRES_IN_SECONDS = 3;
const LIFETIME_MS = EXPIRES_IN_SECONDS * 1_000;

/**
 * The cache settings of the pods and the refresher, scaled down from an hour-long token with a
 * 60 s skew and a 12-minute margin. Each token is stored for 3000 - 300 ms, less the request's
 * own duration, and its renewal job is due 750 ms before that stored expiry. Pods step in on
 * their own only at half the margin, 375 ms after the job is due.
 */
const CACHE_OPTIONS = {
  skewMs: 300,
  refreshAheadMs: 750,
  requestTimeoutMs: 1_000,
  lockTtlMs: 2_000,
} satisfies FleetCacheOptions;

/**
 * Time from one token request to the next: the renewal job of a token sent at time s is due at
 * s + 3000 - 300 - 750 = s + 1950 ms (the request's duration cancels out), and the job sends the
 * next request when it runs, after the queue's latency and a few Redis round trips.
 */
const RENEWAL_PERIOD_MS = LIFETIME_MS - CACHE_OPTIONS.skewMs - CACHE_OPTIONS.refreshAheadMs;

/** The run: three token lifetimes from the moment the first token reaches the refresher. */
const RUN_MS = 3 * LIFETIME_MS;

/**
 * Token requests within the run: the first at t0, then one per period, due at t0 + 1950, 3900,
 * 5850 and 7800 ms. The next is due at t0 + 9750 ms, after the run. Latency only delays a
 * renewal, and each one is due a period after the previous request was sent, so the delays add
 * up: the fourth renewal stays inside the run while they total less than 1200 ms. The other
 * margin, 750 ms plus those delays, covers the first request's duration, which lies between t0
 * and the start of the run, and the time the test takes to stop the fleet.
 */
const EXPECTED_TOKEN_REQUESTS = 1 + Math.floor(RUN_MS / RENEWAL_PERIOD_MS);

/** Worker processes that call the protected resource. */
const PODS = 4;

/** Request loops per worker process. */
const LOOPS_PER_POD = 2;

/**
 * Pause after each request of a loop, in milliseconds. It leaves CPU to the refresher and the
 * mock on a two-core machine, and each token still goes out in many requests.
 */
const PAUSE_MS = 25;

/** BullMQ key prefix of the test queues. The queue name is unique per test. */
const QUEUE_PREFIX = '{tftest}';

const redisUrl = inject('redisUrl');

/** A `refreshed` event of the refresher's cache and the mock's state when it came. */
interface RefresherEvent {
  at: number;
  event: RefreshedEvent;
  /** Tokens that the mock had issued by then: the generation, when no other request went out. */
  issuedCount: number;
  /** Whether the token issued before the newest one was still active at the mock. */
  previousTokenActive: boolean | undefined;
}

describe('renewal through the BullMQ queue', () => {
  let mock: MockOAuthServer;
  let redis: Redis;
  let prefix: string;
  let refresher: Refresher | undefined;

  beforeEach(async () => {
    mock = await startMockOAuthServer({ expiresIn: EXPIRES_IN_SECONDS });
    redis = new Redis(redisUrl);
    prefix = uniquePrefix('fleet-queue-renewal');
  });

  afterEach(async () => {
    await killAll();
    if (refresher !== undefined) {
      await refresher.worker.close();
      await refresher.queue.bullQueue.obliterate({ force: true });
      await refresher.close();
      refresher = undefined;
    }
    await deleteKeys(redis, prefix);
    await redis.quit();
    await mock.close();
  });

  describe('when pods call the resource for three token lifetimes', () => {
    it('renews every token from the queue before it expires', async () => {
      const queueName = prefix.replaceAll(':', '-');
      const client = DEFAULT_MOCK_OAUTH_OPTIONS.clients[0]!;
      refresher = await startRefresher({
        redis: redisUrl,
        providers: [
          quiqup({
            environment: 'staging',
            baseUrl: mock.url,
            clientId: client.clientId,
            clientSecret: client.clientSecret,
          }),
        ],
        keyPrefix: prefix,
        queueName,
        queuePrefix: QUEUE_PREFIX,
        cacheOptions: CACHE_OPTIONS,
        shutdownTimeoutMs: 2_000,
      });
      await refresher.worker.waitUntilReady();
      const refresherCache = refresher.caches[0]!;

      const refresherEvents: RefresherEvent[] = [];
      refresherCache.on('refreshed', (event) => {
        const issued = mock.issuedTokens();
        refresherEvents.push({
          at: performance.now(),
          event,
          issuedCount: issued.length,
          previousTokenActive: issued.at(-2)?.active,
        });
      });

      const startList = `${prefix}:start`;
      const workers = startFleet(PODS, {
        FLEET_MODE: 'continuous',
        FLEET_MOCK_URL: mock.url,
        FLEET_KEY_PREFIX: prefix,
        FLEET_START_LIST: startList,
        FLEET_CALLS: String(LOOPS_PER_POD),
        FLEET_PAUSE_MS: String(PAUSE_MS),
        FLEET_CACHE_OPTIONS: JSON.stringify(CACHE_OPTIONS),
        FLEET_QUEUE_NAME: queueName,
        FLEET_QUEUE_PREFIX: QUEUE_PREFIX,
      });
      await releaseFleet(redis, startList, workers);

      // The run starts when the refresher hears of the first token, which a pod fetched.
      // waitFor resolves with a truthy value only, so `first` is set.
      const first = (await waitFor(() => refresherEvents[0], {
        timeoutMs: 15_000,
        description: 'the first token of the fleet',
      }))!;
      await sleep(Math.max(0, first.at + RUN_MS - performance.now()));
      const [results] = await Promise.all([stopFleet(workers), refresher.worker.close()]);
      const timeline = describeTimeline(first.at, refresherEvents);

      // The token endpoint saw the first request and one per renewal, and the resource never
      // saw an expired token.
      const counts = mock.counts();
      expect(counts.tokenRequests, timeline).toBe(EXPECTED_TOKEN_REQUESTS);
      expect(counts.resourceUnauthorized, timeline).toBe(0);

      // No pod saw a 401, not even one that the authorized fetch retried, and no call failed.
      let totalCalls = 0;
      for (const result of results) {
        expect(result.errors).toEqual([]);
        expect(result.errorCount).toBe(0);
        expect(result.unauthorizedAttempts, timeline).toBe(0);
        expect(Object.keys(result.statuses)).toEqual(['200']);
        expect(result.calls).toBeGreaterThan(0);
        totalCalls += result.calls;
      }
      expect(counts.resourceRequests).toBe(totalCalls);
      expect(counts.resourceOk).toBe(totalCalls);

      // Only the first token came from a pod, and every later one came from a renewal job.
      const podRefreshes = results.flatMap((result) =>
        result.refreshes.filter((refresh) => refresh.origin === 'local'),
      );
      expect(podRefreshes, timeline).toEqual([
        { generation: 1, reason: 'missing', origin: 'local' },
      ]);
      for (const result of results) {
        const renewed = result.refreshes.filter((refresh) => refresh.generation > 1);
        expect(renewed.map((refresh) => refresh.reason)).toEqual(renewed.map(() => 'renewal'));
      }

      // Each renewal job fetched the next generation itself.
      const renewals = EXPECTED_TOKEN_REQUESTS - 1;
      const completed = await refresher.queue.bullQueue.getJobs(['completed']);
      const jobs = completed
        .map((job) => ({ generation: job.data.generation, result: job.returnvalue }))
        .sort((a, b) => a.generation - b.generation);
      expect(
        jobs.map((job) => job.generation),
        timeline,
      ).toEqual(range(1, renewals));
      for (const job of jobs) {
        expect(job.result.outcome).toBe('refreshed');
        expect(job.result.generation).toBe(job.generation + 1);
      }
      expect(await refresher.queue.bullQueue.getJobs(['failed'])).toEqual([]);
      // The renewal of the last token is still waiting for its time.
      expect(
        await refresher.queue.getRenewalJobState(refresherCache.id, EXPECTED_TOKEN_REQUESTS),
      ).toBe('delayed');

      // The refresher renewed each token while the mock still accepted it.
      const renewedByRefresher = refresherEvents.filter((entry) => entry.event.origin === 'local');
      expect(renewedByRefresher.map((entry) => entry.event.reason)).toEqual(
        range(2, EXPECTED_TOKEN_REQUESTS).map(() => 'renewal'),
      );
      expect(renewedByRefresher.map((entry) => entry.event.generation)).toEqual(
        range(2, EXPECTED_TOKEN_REQUESTS),
      );
      for (const entry of renewedByRefresher) {
        expect(entry.issuedCount).toBe(entry.event.generation);
        expect(entry.previousTokenActive).toBe(true);
      }

      // Every issued token reached the pods, and no other.
      const issuedHashes = mock.issuedTokens().map((token) => token.tokenHash);
      const seenHashes = new Set(results.flatMap((result) => result.tokenHashes));
      expect([...seenHashes].sort()).toEqual([...issuedHashes].sort());
    });
  });
});

/**
 * Describes when the refresher heard of each token, from the first, for failure messages: the
 * counts above depend on how far queue latency delayed each renewal.
 */
function describeTimeline(startAt: number, events: readonly RefresherEvent[]): string {
  const entries = events.map(
    (entry) =>
      `generation ${entry.event.generation} (${entry.event.origin}, ${entry.event.reason}) at ${Math.round(entry.at - startAt)} ms`,
  );
  return `refresher events from the first token on: ${entries.join(', ')}`;
}

/** Sends SIGTERM to every worker, which ends its loops and reports, and returns the results. */
async function stopFleet(
  workers: readonly WorkerProcess<FleetWorkerResult>[],
): Promise<FleetWorkerResult[]> {
  await Promise.all(workers.map((worker) => worker.kill('SIGTERM')));
  return Promise.all(workers.map((worker) => worker.result));
}

/** Returns the integers from `first` to `last`, both included. */
function range(first: number, last: number): number[] {
  return Array.from({ length: last - first + 1 }, (_, offset) => first + offset);
}
