// Renewal through the BullMQ queue with short token lifetimes: a refresher in the test process
// renews the token ahead of expiry while four worker processes call the protected resource
// without pause, so no pod ever sends an expired token and no pod refreshes on its own.
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
 * own duration, and its renewal job is due 700 ms before that stored expiry. Pods step in on
 * their own only at half the margin, 350 ms after the job is due.
 */
const CACHE_OPTIONS = {
  skewMs: 300,
  refreshAheadMs: 750,
  requestTimeoutMs: 1_000,
  lockTtlMs: 2_000,
} satisfies FleetCacheOptions;

/**
 * Time from one token request to the next: the renewal job of a token sent at time s is due at
 * s + 3000 - 300 - 700 = s + 2000 ms (the request's duration cancels out), and the job sends the
 * next request when it runs, a few milliseconds of queue latency later.
 */
const RENEWAL_PERIOD_MS = LIFETIME_MS - CACHE_OPTIONS.skewMs - CACHE_OPTIONS.refreshAheadMs;

/** The run: three token lifetimes from the first token request. */
const RUN_MS = 3 * LIFETIME_MS;

/**
 * Token requests within the run: the first at t0, then one per period, at about t0 + 2, 4, 6 and
 * 8 s. The next would go out at about t0 + 10 s, after the run. The run ends half a period from
 * either neighbour, so queue latency of up to 250 ms per renewal does not change the count.
 */
const EXPECTED_TOKEN_REQUESTS = 1 + Math.floor(RUN_MS / RENEWAL_PERIOD_MS);

/** Worker processes that call the protected resource. */
const PODS = 4;

/** Request loops per worker process. */
const LOOPS_PER_POD = 2;

/** Pause after each request of a loop, in milliseconds, so the pods leave CPU to the refresher. */
const PAUSE_MS = 25;

/** BullMQ key prefix of the test queues. The queue name is unique per test. */
const QUEUE_PREFIX = '{tftest}';

const redisUrl = inject('redisUrl');

/** A `refreshed` event of the refresher's cache and the mock's state when it came. */
interface RefresherEvent {
  at: number;
  event: RefreshedEvent;
  /** Tokens that the mock had issued by then. */
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
          wall: Date.now(),
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
      const first = await waitFor(() => refresherEvents[0], {
        timeoutMs: 15_000,
        description: 'the first token of the fleet',
      });
      await sleep(Math.max(0, first.at + RUN_MS - performance.now()));
      const [results] = await Promise.all([stopFleet(workers), refresher.worker.close()]);

      console.log('DBG', JSON.stringify({calls: results.map(r=>r.calls), pods: results.map(r=>r.refreshes), ev: refresherEvents.map(e=>({t: Math.round(e.at-first.at), wall: (e as any).wall, g: e.event.generation, o: e.event.origin, r: e.event.reason, prev: e.previousTokenActive})), issued: mock.issuedTokens().map(t=>[t.tokenHash.slice(0,8), t.createdAt]), jobs: (await refresher.queue.bullQueue.getJobs(['completed'])).map(j=>({g:j.data.generation, due: j.data.dueAt, lag: (j.processedOn??0)-(j.data.dueAt??0), r: j.returnvalue}))}));
      for (const w of workers) console.log('STDERR', w.index, w.stderrTail());
      // The token endpoint saw the first request and one per renewal, and the resource never
      // saw an expired token.
      const counts = mock.counts();
      expect(counts.tokenRequests).toBe(EXPECTED_TOKEN_REQUESTS);
      expect(counts.resourceUnauthorized).toBe(0);

      // No pod saw a 401 or an error, and every request reached the resource once.
      let totalCalls = 0;
      for (const result of results) {
        expect(result.errors).toEqual([]);
        expect(result.errorCount).toBe(0);
        expect(Object.keys(result.statuses)).toEqual(['200']);
        expect(result.calls).toBeGreaterThan(0);
        totalCalls += result.calls;
      }
      expect(counts.resourceRequests).toBe(totalCalls);
      expect(counts.resourceOk).toBe(totalCalls);

      // Only the first token came from a pod; every later one came from a renewal job.
      const podRefreshes = results.flatMap((result) =>
        result.refreshes.filter((refresh) => refresh.origin === 'local'),
      );
      expect(podRefreshes.map(({at, ...r}: any) => r)).toEqual([{ generation: 1, reason: 'missing', origin: 'local' }]);
      for (const result of results) {
        const renewed = result.refreshes.filter((refresh) => refresh.generation > 1);
        expect(renewed.map((refresh) => refresh.reason)).toEqual(
          renewed.map(() => 'renewal'),
        );
      }

      // Each renewal job fetched the next generation itself.
      const renewals = EXPECTED_TOKEN_REQUESTS - 1;
      const completed = await refresher.queue.bullQueue.getJobs(['completed']);
      const jobs = completed
        .map((job) => ({ generation: job.data.generation, result: job.returnvalue }))
        .sort((a, b) => a.generation - b.generation);
      expect(jobs.map((job) => job.generation)).toEqual(range(1, renewals));
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
        expect(entry.previousTokenActive).toBe(true);
      }

      // Every issued token reached the pods, and no other.
      const issuedHashes = mock.issuedTokens().map((token) => token.tokenHash);
      const seenHashes = new Set(results.flatMap((result) => result.tokenHashes));
      expect([...seenHashes].sort()).toEqual([...issuedHashes].sort());
    });
  });
});

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
