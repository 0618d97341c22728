// A day in the fleet, scaled down: 24 lifetimes of a staging token, with 8 pod processes that call
// getTokenInfo() and the protected resource in a loop, and one tokenfleet-refresher process
// (the real bin) that is restarted halfway. Every token after the first comes from a renewal job,
// so the token endpoint gets one request per lifetime, no caller waits for a token request and the
// resource never gets an expired token.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DEFAULT_TOKEN_CACHE_OPTIONS,
  defaultRefreshAheadMs,
  type RefreshedEvent,
} from '@tokenfleet/core';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { killAll, startWorker, type WorkerExit, type WorkerProcess } from '../harness/processes.js';
import { waitFor } from '../harness/wait-for.js';
import { RenewalFixture } from '../renewal/renewal-fixture.js';
import { type DayPodEnv, type DayPodResult, READY_LINE } from './day-contract.js';

const REFRESHER_BIN = new URL('../../packages/refresher/src/bin.ts', import.meta.url);
const POD_SCRIPT = new URL('./day-pod.ts', import.meta.url);

/** A staging token's lifetime, in milliseconds. */
const STAGING_LIFETIME_MS = 3_600_000;

/**
 * Token lifetime at the mock, in seconds: a staging hour scaled down 1000 times, so that a second
 * of the day becomes a millisecond of the test.
 */
const EXPIRES_IN_SECONDS = STAGING_LIFETIME_MS / 1_000 / 1_000;
const LIFETIME_MS = EXPIRES_IN_SECONDS * 1_000;

/** The default skew, 60 s of a staging hour, scaled down with the lifetime: 60 ms. */
const SKEW_MS = (DEFAULT_TOKEN_CACHE_OPTIONS.skewMs * LIFETIME_MS) / STAGING_LIFETIME_MS;

/**
 * Life that the cache stores a token for: the lifetime less the skew (3540 ms), and less the token
 * request's duration, a few milliseconds on loopback.
 */
const STORED_LIFE_MS = LIFETIME_MS - SKEW_MS;

/**
 * The refresh-ahead margin: the default, 20% of the stored life (708 ms). The pods, the test's
 * cache and the refresher all keep the default, so their margins agree.
 */
const REFRESH_AHEAD_MS = defaultRefreshAheadMs(STORED_LIFE_MS);

/**
 * One renewal period: the renewal job of a token requested at time s is due at
 * s + STORED_LIFE_MS - REFRESH_AHEAD_MS = s + 2832 ms. The request's duration d cancels out of the
 * due time but for the 20% of d that the margin loses, so the period is 2832 ms plus a fraction of
 * a millisecond.
 */
const PERIOD_MS = STORED_LIFE_MS - REFRESH_AHEAD_MS;

/**
 * When the pods step in on their own: at half the margin, s + 3540 - 354 = s + 3186 ms, 354 ms
 * after the renewal job is due. A renewal that runs later than that is a pod's refresh instead.
 */
const POD_STEP_IN_MS = STORED_LIFE_MS - REFRESH_AHEAD_MS / 2;

/** Tokens in the run: 24 periods, one per token, the warm token counted as number 1. */
const TOKENS = 24;

/**
 * The token after which the refresher is restarted. The restart begins once that token's renewal
 * job waits in the queue, a few tens of milliseconds after its request. It must end before the
 * pods step in, 3186 ms after that request. The old process exits within about 100 ms. The new one
 * connected its worker 0.4 to 1.5 s after it started on a two-core machine with a load average of 6
 * to 8, and 4 s after at a load average of 19. A 3 s lifetime leaves only 2655 ms, too little.
 */
const RESTART_AFTER_TOKEN = TOKENS / 2;

/**
 * Time from the 24th token request to the stop, in milliseconds. The timing of the run:
 *
 * Token n is requested at s_n = s_1 + (n - 1) × 2832 ms plus the queue's latency of n - 1 renewals
 * (tens of milliseconds each), so the 24th comes about 65 s after the first. The test does not wait
 * a fixed time for it: it polls the mock every 10 ms until the 24th request has arrived, so however
 * late the queue runs, the stop never falls before the 24th token. That is the margin on the early
 * side, and these 500 ms also give every pod time to receive the 24th token's message.
 *
 * The 25th request would be due when the 24th token's renewal job runs, at s_24 + 2832 ms at the
 * earliest, and a pod would send it only at s_24 + 3186 ms. The stop comes at about s_24 + 510 ms.
 * So the refresher has 2320 ms to close its worker after SIGTERM, and the pods 2670 ms to end their
 * loops, where each takes a few hundred milliseconds at most. That is the margin on the late side,
 * and the count after the shutdown checks that it held.
 */
const STOP_MARGIN_MS = 500;

/** Pod processes. */
const PODS = 8;

/**
 * Pause after each round of a pod's loop, in milliseconds. It leaves CPU to the refresher and the
 * mock on two cores, and each token still goes out in hundreds of calls.
 */
const PAUSE_MS = 25;

/**
 * How long the pods and a refresher may take to start, in milliseconds: eight processes that load
 * tsx, ioredis and BullMQ at once take several seconds on two cores.
 */
const START_TIMEOUT_MS = 40_000;

/** Slack over the expected time of a wait before the test gives up on it, in milliseconds. */
const WAIT_SLACK_MS = 20_000;

/** Poll interval of the waits for a token request, in milliseconds. */
const POLL_MS = 10;

/** Hang guard of the test: starts, 23 periods and every wait's slack. It takes about 75 s. */
const TEST_TIMEOUT_MS = 180_000;

/** Pino message that the refresher logs once its BullMQ worker is connected. */
const WORKER_STARTED_PATTERN = '"msg":"renewal worker started"';

const redisUrl = inject('redisUrl');

/** A moment of the run, for failure messages. */
interface TimelineEntry {
  at: number;
  what: string;
}

describe('a day in the fleet', () => {
  let fixture: RenewalFixture;

  beforeEach(async () => {
    fixture = await RenewalFixture.start({ name: 'day', redisUrl, expiresIn: EXPIRES_IN_SECONDS });
  });

  afterEach(async () => {
    await killAll();
    await fixture.close();
  });

  describe('when 8 pods call for 24 token lifetimes and the refresher restarts halfway', () => {
    it(
      'renews every token from the queue and no caller waits',
      async () => {
        const timeline: TimelineEntry[] = [];
        const mark = (what: string) => timeline.push({ at: performance.now(), what });
        const describeRun = () => describeTimeline(timeline);

        // Start the refresher and the pods together; the pods wait for the warm token.
        const firstRefresher = startRefresherService(fixture);
        const pods = startPods(fixture);
        await Promise.all([
          firstRefresher.waitForOutput(WORKER_STARTED_PATTERN, START_TIMEOUT_MS),
          ...pods.map((pod) => pod.waitForOutput(READY_LINE, START_TIMEOUT_MS)),
        ]);

        // Warm the token with a cache in the test, which adds the renewal job of generation 1 and
        // then watches every later generation arrive.
        const queue = fixture.openQueue();
        const observer = fixture.openCache({ skewMs: SKEW_MS, renewal: queue });
        const observed: RefreshedEvent[] = [];
        observer.on('refreshed', (event) => {
          observed.push(event);
          mark(`generation ${event.generation} (${event.origin}, ${event.reason})`);
        });
        const warm = await observer.getTokenInfo();
        expect(warm.source).toBe('upstream');
        expect(warm.generation).toBe(1);

        // Halfway: once the 12th token is stored and its renewal job waits, stop the refresher
        // and start a new one (see RESTART_AFTER_TOKEN for the time it has).
        await waitForTokenRequests(fixture, RESTART_AFTER_TOKEN, describeRun);
        await fixture.waitForJobState(queue, observer.id, RESTART_AFTER_TOKEN - 1, ['completed']);
        await fixture.waitForJobState(queue, observer.id, RESTART_AFTER_TOKEN, ['delayed']);
        mark('SIGTERM to the first refresher');
        const firstExit = await firstRefresher.kill('SIGTERM');
        mark(`first refresher exited with ${describeExit(firstExit)}`);
        expect(firstExit, describeRun()).toEqual({ code: 0, signal: null });
        const secondRefresher = startRefresherService(fixture);
        await secondRefresher.waitForOutput(WORKER_STARTED_PATTERN, START_TIMEOUT_MS);
        mark('second refresher connected its worker');

        // The end of the run: the 24th token plus STOP_MARGIN_MS.
        await waitForTokenRequests(fixture, TOKENS, describeRun);
        await sleep(STOP_MARGIN_MS);
        const countsAtStop = fixture.mock.counts();
        mark(`stop, ${countsAtStop.tokenRequests} token requests`);
        const [results, secondExit] = await Promise.all([
          stopPods(pods),
          secondRefresher.kill('SIGTERM'),
        ]);
        mark(`second refresher exited with ${describeExit(secondExit)}`);
        const counts = fixture.mock.counts();

        // One token request per lifetime over the run, and none during the shutdown.
        expect(countsAtStop.tokenRequests, describeRun()).toBe(TOKENS);
        expect(counts.tokenRequests, describeRun()).toBe(TOKENS);
        expect(counts.tokenSuccesses).toBe(TOKENS);
        expect(secondExit).toEqual({ code: 0, signal: null });

        // The resource never saw an expired token, and every call of every pod succeeded.
        expect(counts.resourceUnauthorized, describeRun()).toBe(0);
        let resourceCalls = 0;
        for (const [index, result] of results.entries()) {
          const pod = `pod ${index}`;
          expect(result.errors, pod).toEqual([]);
          expect(result.errorCount, pod).toBe(0);
          expect(result.unauthorizedAttempts, pod).toBe(0);
          expect(Object.keys(result.statuses), pod).toEqual(['200']);
          expect(result.rounds, pod).toBeGreaterThan(0);
          resourceCalls += result.statuses['200'] ?? 0;
        }
        expect(counts.resourceRequests).toBe(resourceCalls);
        expect(counts.resourceOk).toBe(resourceCalls);

        // No caller waited for a token request: every getTokenInfo() found the token in memory
        // or in Redis. A round makes two calls, its own and the authorized fetch's, which never
        // retried.
        for (const [index, result] of results.entries()) {
          const pod = `pod ${index}`;
          const { memory, redis, upstream } = result.sources;
          expect(upstream, `${pod} ${describeRun()}`).toBe(0);
          expect(memory + redis, pod).toBe(2 * result.rounds);
        }

        // No pod refreshed: each heard of every renewal from the refreshers and fetched nothing.
        // A pod may also have heard of generation 1, which the test's cache fetched while the
        // pods waited for it.
        const renewals = range(2, TOKENS).map((generation) => ({ generation, reason: 'renewal' }));
        for (const [index, result] of results.entries()) {
          const pod = `pod ${index}`;
          expect(result.localRefreshes, `${pod} ${describeRun()}`).toBe(0);
          const renewed = result.remoteRefreshes.filter((refresh) => refresh.generation > 1);
          expect(renewed, `${pod} ${describeRun()}`).toEqual(renewals);
        }
        expect(observed.filter((event) => event.origin === 'local')).toEqual([
          { generation: 1, remainingMs: expect.any(Number), reason: 'missing', origin: 'local' },
        ]);

        // Every renewal came from the queue: the job of each generation fetched the next one,
        // and the job of the last token still waits for its time.
        for (const generation of range(1, TOKENS - 1)) {
          const job = await queue.getRenewalJob(observer.id, generation);
          expect(await job?.getState(), `job of generation ${generation}`).toBe('completed');
          expect(job?.returnvalue).toMatchObject({
            outcome: 'refreshed',
            generation: generation + 1,
          });
        }
        expect(await queue.getRenewalJobState(observer.id, TOKENS)).toBe('delayed');
        expect(await queue.bullQueue.getJobs(['failed'])).toEqual([]);
      },
      TEST_TIMEOUT_MS,
    );
  });
});

/** Starts the tokenfleet-refresher bin for the fixture's client, queue and key prefix. */
function startRefresherService(fixture: RenewalFixture): WorkerProcess {
  const client = fixture.clients[0]!;
  return startWorker({
    script: REFRESHER_BIN,
    env: {
      TOKENFLEET_REDIS_URL: fixture.redisUrl,
      QUIQUP_CLIENT_ID: client.clientId,
      QUIQUP_CLIENT_SECRET: client.clientSecret,
      QUIQUP_ENVIRONMENT: 'staging',
      QUIQUP_BASE_URL: fixture.mock.url,
      TOKENFLEET_QUEUE: fixture.queueName,
      TOKENFLEET_QUEUE_PREFIX: fixture.queuePrefix,
      TOKENFLEET_KEY_PREFIX: fixture.keyPrefix,
      TOKENFLEET_REFRESHER_PORT: '0',
      // A few sweeps per period, so that the sweep runs alongside the renewals.
      TOKENFLEET_SWEEP_INTERVAL_MS: '1000',
      TOKENFLEET_SHUTDOWN_TIMEOUT_MS: '2000',
      TOKENFLEET_SKEW_MS: String(SKEW_MS),
      // Empty counts as unset: the default margin, and no variable of the test's environment.
      TOKENFLEET_REFRESH_AHEAD_MS: '',
      TOKENFLEET_CLIENTS_FILE: '',
      TOKENFLEET_LOG_LEVEL: '',
      LOG_LEVEL: 'info',
    },
  });
}

/** Starts the pod processes; each prints READY and waits for a stored token. */
function startPods(fixture: RenewalFixture): WorkerProcess<DayPodResult>[] {
  const client = fixture.clients[0]!;
  const env: DayPodEnv = {
    DAY_MOCK_URL: fixture.mock.url,
    DAY_CLIENT_ID: client.clientId,
    DAY_CLIENT_SECRET: client.clientSecret,
    DAY_KEY_PREFIX: fixture.keyPrefix,
    DAY_QUEUE_NAME: fixture.queueName,
    DAY_QUEUE_PREFIX: fixture.queuePrefix,
    DAY_SKEW_MS: String(SKEW_MS),
    DAY_PAUSE_MS: String(PAUSE_MS),
  };
  return Array.from({ length: PODS }, (_, index) =>
    startWorker<DayPodResult>({ script: POD_SCRIPT, env: { ...env }, index, count: PODS }),
  );
}

/** Sends SIGTERM to every pod, which ends its loop and reports, and returns the results. */
async function stopPods(pods: readonly WorkerProcess<DayPodResult>[]): Promise<DayPodResult[]> {
  await Promise.all(pods.map((pod) => pod.kill('SIGTERM')));
  return Promise.all(pods.map((pod) => pod.result));
}

/** Waits until the mock has received `count` token requests, within `count` periods and slack. */
async function waitForTokenRequests(
  fixture: RenewalFixture,
  count: number,
  describeRun: () => string,
): Promise<void> {
  try {
    await waitFor(() => fixture.mock.counts().tokenRequests >= count, {
      timeoutMs: count * PERIOD_MS + WAIT_SLACK_MS,
      intervalMs: POLL_MS,
      description: `token request ${count}`,
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}; ${describeRun()}`, { cause: err });
  }
}

function describeExit(exit: WorkerExit): string {
  return exit.signal === null ? `code ${exit.code}` : `signal ${exit.signal}`;
}

/**
 * Lists the moments of the run from the first, for failure messages: the counts depend on how far
 * the queue's latency and the restart delayed each renewal. Renewals are due PERIOD_MS apart, and
 * pods step in POD_STEP_IN_MS after a token request.
 */
function describeTimeline(entries: readonly TimelineEntry[]): string {
  const startAt = entries[0]?.at ?? 0;
  const lines = entries.map((entry) => `${Math.round(entry.at - startAt)} ms: ${entry.what}`);
  return `run (period ${PERIOD_MS} ms, pods step in at ${POD_STEP_IN_MS} ms): ${lines.join('; ')}`;
}

/** Returns the integers from `first` to `last`, both included. */
function range(first: number, last: number): number[] {
  return Array.from({ length: last - first + 1 }, (_, offset) => first + offset);
}
