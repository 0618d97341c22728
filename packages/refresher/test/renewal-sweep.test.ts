import { InvalidClientError } from '@tokenfleet/core';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createRenewalQueue,
  type RenewalQueue,
  type RenewalSweep,
  startRenewalSweep,
  startRenewalWorker,
} from '../src/index.js';
import {
  captureLogs,
  destroyQueue,
  FakeCache,
  REDIS_URL,
  uniqueQueue,
  waitFor,
  waitForJobState,
} from './helpers.js';

const TEN_MINUTES_MS = 600_000;

describe('startRenewalSweep', () => {
  let queue: RenewalQueue;
  let cache: FakeCache;
  let sweep: RenewalSweep | undefined;
  let registry: Registry;
  let names: ReturnType<typeof uniqueQueue>;

  beforeEach(() => {
    names = uniqueQueue();
    queue = createRenewalQueue({ connection: REDIS_URL, ...names });
    cache = new FakeCache();
    cache.onStatus = async () => cache.storedStatus(5, TEN_MINUTES_MS);
    registry = new Registry();
    sweep = undefined;
  });

  afterEach(async () => {
    await sweep?.stop();
    await destroyQueue(queue);
  });

  function start(intervalMs = 60_000, refreshAheadMs?: number): RenewalSweep {
    sweep = startRenewalSweep({
      queue,
      caches: [cache],
      intervalMs,
      refreshAheadMs,
      metricsRegistry: registry,
    });
    return sweep;
  }

  async function recreatedCount(): Promise<number> {
    const metric = await registry.getSingleMetric('tokenfleet_renewal_jobs_recreated_total')?.get();
    return metric?.values[0]?.value ?? 0;
  }

  describe('when a stored token has no job', () => {
    it('adds the job of the stored generation on its first run', async () => {
      const started = start();

      await waitFor('the first sweep', () => (started.completedRuns >= 1 ? true : undefined));

      const job = await queue.getRenewalJob(cache.id, 5);
      expect(await queue.getRenewalJobState(cache.id, 5)).toBe('delayed');
      // The estimate takes 20% of the remaining life as the refresh-ahead margin.
      expect(job?.opts.delay).toBe(TEN_MINUTES_MS - TEN_MINUTES_MS / 5);
      expect(await recreatedCount()).toBe(1);
    });

    it('uses the configured refresh-ahead margin', async () => {
      const started = start(60_000, 100_000);

      await waitFor('the first sweep', () => (started.completedRuns >= 1 ? true : undefined));

      const job = await queue.getRenewalJob(cache.id, 5);
      expect(job?.opts.delay).toBe(TEN_MINUTES_MS - 100_000);
    });

    it('logs the re-created job', async () => {
      const logs = captureLogs();
      sweep = startRenewalSweep({ queue, caches: [cache], logger: logs.logger });

      await waitFor('the first sweep', () => (sweep!.completedRuns >= 1 ? true : undefined));

      expect(logs.find('renewal job re-created')).toMatchObject({
        component: 'renewal-sweep',
        tokenId: cache.id,
        generation: 5,
        jobId: `renew-${cache.id}-5`,
        previousState: 'missing',
      });
    });
  });

  describe('when the job exists', () => {
    it('leaves it alone', async () => {
      await queue.scheduleRenewal({
        tokenId: cache.id,
        generation: 5,
        delayMs: 1_000,
        remainingMs: 2_000,
      });
      const started = start();

      const result = await started.runOnce();

      expect(result).toEqual({ checked: 1, recreated: 0, failed: 0 });
      expect((await queue.getRenewalJob(cache.id, 5))?.opts.delay).toBe(1_000);
    });
  });

  describe('when the job is deleted', () => {
    it('re-creates it within one interval', async () => {
      const started = start(300);
      await waitFor('the first sweep', () => (started.completedRuns >= 1 ? true : undefined));
      const runsBefore = started.completedRuns;

      await (await queue.getRenewalJob(cache.id, 5))?.remove();
      expect(await queue.getRenewalJobState(cache.id, 5)).toBe('unknown');

      await waitFor(
        'the next sweep',
        () => (started.completedRuns > runsBefore ? true : undefined),
        1_000,
      );
      expect(await queue.getRenewalJobState(cache.id, 5)).toBe('delayed');
      expect(await recreatedCount()).toBe(2);
    });
  });

  describe('when the job of the stored generation failed', () => {
    it('replaces the failed job', async () => {
      cache.onRenew = async () => {
        throw new InvalidClientError('token endpoint answered 401 invalid_client');
      };
      const worker = startRenewalWorker({ connection: REDIS_URL, caches: [cache], ...names });
      await queue.scheduleRenewal({
        tokenId: cache.id,
        generation: 5,
        delayMs: 0,
        remainingMs: 2_000,
      });
      await waitForJobState(queue, cache.id, 5, ['failed']);
      await worker.close();
      const started = start();

      await waitFor('the first sweep', () => (started.completedRuns >= 1 ? true : undefined));

      expect(await queue.getRenewalJobState(cache.id, 5)).toBe('delayed');
    });
  });

  describe('when no token is stored', () => {
    it('adds no job', async () => {
      cache.onStatus = async () => cache.storedStatus(undefined, undefined);
      const started = start();

      const result = await started.runOnce();

      expect(result).toEqual({ checked: 1, recreated: 0, failed: 0 });
      const counts = await queue.bullQueue.getJobCounts('delayed', 'waiting');
      expect(counts.delayed).toBe(0);
      expect(counts.waiting).toBe(0);
    });
  });

  describe('when the fleet cools down', () => {
    it('delays the job until the cooldown ends', async () => {
      cache.onStatus = async () => ({ ...cache.storedStatus(5, 1_000), cooldownMs: 45_000 });
      const started = start();

      await started.runOnce();

      expect((await queue.getRenewalJob(cache.id, 5))?.opts.delay).toBe(45_000);
    });
  });

  describe('when status fails', () => {
    it('counts the failure and checks the other caches', async () => {
      const broken = new FakeCache();
      broken.onStatus = async () => {
        throw new Error('redis timed out');
      };
      sweep = startRenewalSweep({ queue, caches: [broken, cache] });

      const result = await sweep.runOnce();

      expect(result.checked).toBe(2);
      expect(result.failed).toBe(1);
      expect(await queue.getRenewalJobState(cache.id, 5)).toBe('delayed');
    });
  });

  describe('when runOnce is called during a sweep', () => {
    it('joins the running sweep', async () => {
      let release: () => void = () => {};
      cache.onStatus = () =>
        new Promise((resolve) => {
          release = () => resolve(cache.storedStatus(5, TEN_MINUTES_MS));
        });
      sweep = startRenewalSweep({ queue, caches: [cache], intervalMs: 60_000 });
      await waitFor('the first sweep to start', () => (cache.statusCalls === 1 ? true : undefined));

      const first = sweep.runOnce();
      const second = sweep.runOnce();
      release();
      await Promise.all([first, second]);

      expect(first).toBe(second);
      expect(cache.statusCalls).toBe(1);
      expect(sweep.completedRuns).toBe(1);
    });
  });

  describe('when stop is called during a sweep', () => {
    it('waits for the sweep to finish', async () => {
      let release: () => void = () => {};
      cache.onStatus = () =>
        new Promise((resolve) => {
          release = () => resolve(cache.storedStatus(5, TEN_MINUTES_MS));
        });
      const started = start(60_000);
      await waitFor('the first sweep to start', () => (cache.statusCalls === 1 ? true : undefined));

      const stopped = started.stop();
      setTimeout(() => release(), 100);
      await stopped;
      sweep = undefined;

      expect(started.completedRuns).toBe(1);
    });
  });
});
