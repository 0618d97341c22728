// A 30-day token: its renewal job waits about 30 days less the skew and the refresh-ahead margin,
// longer than Node's largest timer delay (2^31-1 ms, about 24.8 days). The pods, the sweep and
// the workers, in this process and in a worker process, must never hand such a delay to a timer,
// which Node would replace by 1 ms with a TimeoutOverflowWarning.
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_TOKEN_CACHE_OPTIONS } from '@tokenfleet/core';
import { type RenewalJob, renewalJobId } from '@tokenfleet/refresher';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { killAll, startWorker } from '../harness/processes.js';
import { waitFor } from '../harness/wait-for.js';
import { RenewalFixture } from './renewal-fixture.js';
import {
  type RenewalWorkerConfig,
  type RenewalWorkerResult,
  WORKER_CONFIG_ENV,
  WORKER_READY_LINE,
} from './worker-contract.js';

const WORKER_SCRIPT = new URL('./renewal-worker-process.ts', import.meta.url);

const LIFETIME_SECONDS = 30 * 24 * 3_600;

/** Node's largest timer delay. A longer one fires after 1 ms with a TimeoutOverflowWarning. */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** The cache's default margins: 60 s of skew and a refresh-ahead margin of 20% of the life, at most 1 h. */
const SKEW_MS = DEFAULT_TOKEN_CACHE_OPTIONS.skewMs;
const REFRESH_AHEAD_MS = 3_600_000;

/** Delay of the job if the token request took no time. The request's duration comes off it. */
const FULL_DELAY_MS = LIFETIME_SECONDS * 1_000 - SKEW_MS - REFRESH_AHEAD_MS;

/** Upper bound of the token request's duration and the job's add, in milliseconds. */
const REQUEST_ALLOWANCE_MS = 10_000;

/** How long the workers and the sweep run with the long job in the queue. */
const RUN_MS = 1_500;

const redisUrl = inject('redisUrl');

describe('renewal job of a 30-day token', () => {
  let fixture: RenewalFixture;
  const warnings: Error[] = [];
  const onWarning = (warning: Error) => {
    warnings.push(warning);
  };

  beforeEach(async () => {
    fixture = await RenewalFixture.start({
      name: 'long-lifetime',
      redisUrl,
      expiresIn: LIFETIME_SECONDS,
    });
    warnings.length = 0;
    process.on('warning', onWarning);
  });

  afterEach(async () => {
    process.off('warning', onWarning);
    await killAll();
    await fixture.close();
  });

  function expectLongDelay(job: RenewalJob | undefined, addedAfter: number): void {
    expect(job).toBeDefined();
    expect(job!.delay).toBeGreaterThan(MAX_TIMER_DELAY_MS);
    expect(job!.delay).toBeLessThanOrEqual(FULL_DELAY_MS);
    expect(job!.delay).toBeGreaterThan(FULL_DELAY_MS - REQUEST_ALLOWANCE_MS);
    expect(job!.timestamp).toBeGreaterThanOrEqual(addedAfter);
    // The queue notes the due time just before BullMQ stamps the job, so they differ by a few ms.
    expect(Math.abs(job!.data.dueAt! - (job!.timestamp + job!.delay))).toBeLessThan(1_000);
  }

  it('stays delayed about 30 days without a timer overflow', async () => {
    const config: RenewalWorkerConfig = {
      redisUrl,
      mockUrl: fixture.mock.url,
      clients: [...fixture.clients],
      keyPrefix: fixture.keyPrefix,
      queueName: fixture.queueName,
      queuePrefix: fixture.queuePrefix,
      cacheOptions: {},
      workerOptions: {},
    };
    const child = startWorker<RenewalWorkerResult>({
      script: WORKER_SCRIPT,
      env: { [WORKER_CONFIG_ENV]: JSON.stringify(config) },
    });
    const pod = fixture.openCache();
    const queue = fixture.openQueue();
    const refresherCache = fixture.openCache();
    await fixture.startWorker([refresherCache]).waitUntilReady();
    const sweep = fixture.startSweep({ queue, caches: [refresherCache], intervalMs: 200 });
    await child.waitForOutput(WORKER_READY_LINE, 30_000);

    const startedAt = Date.now();
    const info = await pod.getTokenInfo();
    expect(info.generation).toBe(1);
    expect(await queue.getRenewalJobState(pod.id, 1)).toBe('delayed');
    expectLongDelay(await queue.getRenewalJob(pod.id, 1), startedAt);
    await sleep(RUN_MS);
    expect(await queue.getRenewalJobState(pod.id, 1)).toBe('delayed');

    // The sweep adds the job again with the same long delay when it goes missing.
    const deletedAt = Date.now();
    await fixture.deleteQueueKeys();
    await waitFor(async () => (await queue.getRenewalJobState(pod.id, 1)) === 'delayed', {
      description: 'the sweep to re-create the job',
    });
    expectLongDelay(await queue.getRenewalJob(pod.id, 1), deletedAt);
    await sleep(RUN_MS);

    await sweep.stop();
    await child.kill('SIGTERM');
    const result = await child.result;
    expect(await pod.getToken()).toBe(await refresherCache.getToken());
    expect(fixture.mock.counts().tokenRequests).toBe(1);
    expect((await queue.bullQueue.getJobs(['delayed'])).map((job) => job.id)).toEqual([
      renewalJobId(pod.id, 1),
    ]);
    expect(result.warnings).toEqual([]);
    expect(child.stderrTail()).not.toContain('TimeoutOverflowWarning');
    expect(warnings.map((warning) => warning.name)).not.toContain('TimeoutOverflowWarning');
  });
});
