// Renewal jobs that do not exist, because no pod had a queue when the tokens were fetched or
// because Redis lost the job keys, come back with the repeating sweep: one job per stored token,
// within one sweep interval.
import { type RenewalQueue, type RenewalSweep, renewalJobId } from '@tokenfleet/refresher';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { waitFor } from '../harness/wait-for.js';
import { RenewalFixture } from './renewal-fixture.js';

const TOKENS = 3;

/** 60 s tokens stored for 59 s, with their jobs due 20 s before that. */
const CACHE_OPTIONS = { skewMs: 1_000, refreshAheadMs: 20_000 };

const SWEEP_INTERVAL_MS = 500;

const redisUrl = inject('redisUrl');

describe('renewal sweep', () => {
  let fixture: RenewalFixture;

  beforeEach(async () => {
    fixture = await RenewalFixture.start({
      name: 'lost-jobs',
      redisUrl,
      expiresIn: 60,
      clientCount: TOKENS,
    });
  });

  afterEach(async () => {
    await fixture.close();
  });

  /** Fetches a token for every client through pods and returns the pods' caches. */
  async function fetchTokens(withQueue: boolean) {
    const options = withQueue ? CACHE_OPTIONS : { ...CACHE_OPTIONS, renewal: undefined };
    const pods = Array.from({ length: TOKENS }, (_, index) => fixture.openCache(options, index));
    await Promise.all(pods.map((pod) => pod.getToken()));
    return pods;
  }

  /** Starts a sweep over refresher-side caches of every client, as the refresher service runs it. */
  function startSweep(queue: RenewalQueue, registry: Registry): RenewalSweep {
    const caches = Array.from({ length: TOKENS }, (_, index) =>
      fixture.openCache({ ...CACHE_OPTIONS, renewal: queue }, index),
    );
    return fixture.startSweep({
      queue,
      caches,
      intervalMs: SWEEP_INTERVAL_MS,
      metricsRegistry: registry,
    });
  }

  /** Waits until the sweep has started and finished a full run after this call. */
  async function nextFullSweep(sweep: RenewalSweep): Promise<void> {
    const runs = sweep.completedRuns;
    await waitFor(() => sweep.completedRuns >= runs + 2, {
      description: 'a sweep that started after the jobs were lost',
    });
  }

  async function expectOneDelayedJobPerToken(queue: RenewalQueue, tokenIds: string[]) {
    const delayed = await queue.bullQueue.getJobs(['delayed']);
    expect(delayed.map((job) => job.id).sort()).toEqual(
      tokenIds.map((tokenId) => renewalJobId(tokenId, 1)).sort(),
    );
    for (const job of delayed) {
      expect(job.data.generation).toBe(1);
      // The stored life is 59 s less the request time, and the margin is 20 s of it.
      expect(job.delay).toBeGreaterThan(30_000);
      expect(job.delay).toBeLessThanOrEqual(39_000);
    }
  }

  async function recreatedTotal(registry: Registry): Promise<number> {
    const metric = await registry.getSingleMetric('tokenfleet_renewal_jobs_recreated_total')!.get();
    return metric.values[0]?.value ?? 0;
  }

  describe('when no pod had a renewal queue', () => {
    it('adds the job of every stored token on its first run', async () => {
      const pods = await fetchTokens(false);
      const queue = fixture.openQueue();
      expect(await queue.bullQueue.getJobCounts()).toMatchObject({ delayed: 0, waiting: 0 });
      const registry = new Registry();

      const sweep = startSweep(queue, registry);
      await waitFor(() => sweep.completedRuns >= 1, { description: 'the first sweep' });

      await expectOneDelayedJobPerToken(
        queue,
        pods.map((pod) => pod.id),
      );
      expect(await recreatedTotal(registry)).toBe(TOKENS);
      expect(fixture.mock.counts().tokenRequests).toBe(TOKENS);
    });
  });

  describe('when every key of the queue is deleted', () => {
    it('re-creates every job with the next sweep', async () => {
      const pods = await fetchTokens(true);
      const queue = fixture.openQueue();
      const registry = new Registry();
      const sweep = startSweep(queue, registry);
      await waitFor(() => sweep.completedRuns >= 1, { description: 'the first sweep' });
      expect(await recreatedTotal(registry)).toBe(0);

      const deleted = await fixture.deleteQueueKeys();
      expect(deleted).toBeGreaterThanOrEqual(TOKENS);
      expect(await queue.bullQueue.getJobCounts()).toMatchObject({ delayed: 0 });
      await nextFullSweep(sweep);

      await expectOneDelayedJobPerToken(
        queue,
        pods.map((pod) => pod.id),
      );
      expect(await recreatedTotal(registry)).toBe(TOKENS);
    });
  });

  describe('when only the job hashes are deleted', () => {
    it('re-creates every job with the next sweep', async () => {
      const pods = await fetchTokens(true);
      const queue = fixture.openQueue();
      const registry = new Registry();
      const sweep = startSweep(queue, registry);
      await waitFor(() => sweep.completedRuns >= 1, { description: 'the first sweep' });

      // As an eviction would: the job ids stay in the delayed set, their data is gone.
      for (const pod of pods) {
        const jobKey = `${fixture.queuePrefix}:${fixture.queueName}:${renewalJobId(pod.id, 1)}`;
        expect(await fixture.redis.del(jobKey)).toBe(1);
      }
      await nextFullSweep(sweep);

      for (const pod of pods) {
        const job = await queue.getRenewalJob(pod.id, 1);
        expect(job?.data).toMatchObject({ tokenId: pod.id, generation: 1 });
      }
      await expectOneDelayedJobPerToken(
        queue,
        pods.map((pod) => pod.id),
      );
      expect(await recreatedTotal(registry)).toBe(TOKENS);
    });
  });
});
