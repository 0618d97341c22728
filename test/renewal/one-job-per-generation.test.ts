// Five pods, each with its own Redis connections and its own renewal queue object, add the
// renewal job of the same token generation: BullMQ keeps one delayed job for it.
import { renewalJobId } from '@tokenfleet/refresher';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { RenewalFixture } from './renewal-fixture.js';

const PODS = 5;

/** Scaled-down hour-long token: 60 s of life, 1 s skew, renewal 20 s before the stored end. */
const CACHE_OPTIONS = { skewMs: 1_000, refreshAheadMs: 20_000 };

const redisUrl = inject('redisUrl');

describe('renewal job of one generation', () => {
  let fixture: RenewalFixture;

  beforeEach(async () => {
    fixture = await RenewalFixture.start({ name: 'one-job', redisUrl, expiresIn: 60 });
  });

  afterEach(async () => {
    await fixture.close();
  });

  describe('when five pods read the token at once', () => {
    it('leaves one delayed job for the generation', async () => {
      const pods = Array.from({ length: PODS }, () => fixture.openCache(CACHE_OPTIONS));

      const infos = await Promise.all(pods.map((pod) => pod.getTokenInfo()));

      const generations = new Set(infos.map((info) => info.generation));
      expect(generations).toEqual(new Set([1]));
      expect(fixture.mock.counts().tokenRequests).toBe(1);
      const queue = fixture.openQueue();
      const counts = await queue.bullQueue.getJobCounts();
      expect(counts.delayed).toBe(1);
      expect(counts.waiting).toBe(0);
      expect(counts.active).toBe(0);
      const delayed = await queue.bullQueue.getJobs(['delayed']);
      expect(delayed.map((job) => job.id)).toEqual([renewalJobId(pods[0]!.id, 1)]);
    });
  });

  describe('when five pods add the job of the same generation', () => {
    it('keeps the first job and ignores the other adds', async () => {
      const pods = Array.from({ length: PODS }, () => ({
        cache: fixture.openCache({ ...CACHE_OPTIONS, renewal: undefined }),
        queue: fixture.openQueue(),
      }));
      const first = await pods[0]!.cache.getTokenInfo();
      const tokenId = pods[0]!.cache.id;
      const request = (delayMs: number) => ({
        tokenId,
        generation: first.generation,
        delayMs,
        remainingMs: first.remainingMs,
      });

      // Each pod computes its own delay from its own read, so the delays differ by a few ms.
      await Promise.all(
        pods.map(({ queue }, index) => queue.scheduleRenewal(request(30_000 + index))),
      );
      await Promise.all(pods.map(({ queue }) => queue.scheduleRenewal(request(29_000))));

      const queue = pods[0]!.queue;
      const counts = await queue.bullQueue.getJobCounts();
      expect(counts.delayed).toBe(1);
      expect(counts.waiting).toBe(0);
      const delayed = await queue.bullQueue.getJobs(['delayed']);
      expect(delayed).toHaveLength(1);
      const job = delayed[0]!;
      expect(job.id).toBe(renewalJobId(tokenId, first.generation));
      expect(job.data).toMatchObject({ tokenId, generation: first.generation });
      expect(job.delay).toBeGreaterThanOrEqual(30_000);
      expect(job.delay).toBeLessThan(30_000 + PODS);
      expect(fixture.mock.counts().tokenRequests).toBe(1);
    });
  });
});
