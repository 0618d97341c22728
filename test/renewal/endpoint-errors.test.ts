// Renewal jobs against a failing token endpoint: transient errors (503, 429) are retried with
// jittered exponential back-off inside the token's remaining life until a run succeeds. A
// rejected client (401) fails the job at once, after one run and one token request.
import { setTimeout as sleep } from 'node:timers/promises';
import type { TokenCache } from '@tokenfleet/core';
import type { RenewalQueue } from '@tokenfleet/refresher';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { captureLogs, RenewalFixture } from './renewal-fixture.js';

/**
 * A 20 s token stored for 19.8 s with its job due 10 s before that. One token request per run, so
 * the job's retries are the only retries.
 */
const CACHE_OPTIONS = { skewMs: 200, refreshAheadMs: 10_000, retry: { attempts: 1 } };

/** Ceiling of the first retry delay, which doubles with each retry. */
const BACKOFF_DELAY_MS = 200;

const redisUrl = inject('redisUrl');

describe('renewal job against a failing token endpoint', () => {
  let fixture: RenewalFixture;
  let logs: ReturnType<typeof captureLogs>;
  let pod: TokenCache;
  let queue: RenewalQueue;
  let firstToken: string;
  /** Whether the first token was still active at the mock when the worker stored the next one. */
  let activeAtRenewal: boolean[];

  beforeEach(async () => {
    fixture = await RenewalFixture.start({ name: 'endpoint-errors', redisUrl, expiresIn: 20 });
    logs = captureLogs();
    queue = fixture.openQueue({ backoffDelayMs: BACKOFF_DELAY_MS });
    pod = fixture.openCache({ ...CACHE_OPTIONS, renewal: queue });
    firstToken = await pod.getToken();

    const workerCache = fixture.openCache(CACHE_OPTIONS);
    activeAtRenewal = [];
    workerCache.on('refreshed', (event) => {
      if (event.origin === 'local') {
        activeAtRenewal.push(fixture.mock.isTokenActive(firstToken));
      }
    });
    await fixture.startWorker([workerCache], { logger: logs.logger }).waitUntilReady();
  });

  afterEach(async () => {
    await fixture.close();
  });

  /** Runs the renewal job of generation 1 now and waits until it completed or failed. */
  async function runFirstJob() {
    await (await queue.getRenewalJob(pod.id, 1))!.promote();
    await fixture.waitForJobState(queue, pod.id, 1, ['completed', 'failed']);
    return (await queue.getRenewalJob(pod.id, 1))!;
  }

  describe('when the endpoint returns 503 three times', () => {
    it('retries with jittered back-off and then renews', async () => {
      fixture.mock.setFaults({ status: 503, times: 3 });

      const job = await runFirstJob();

      expect(await job.getState()).toBe('completed');
      expect(job.returnvalue).toMatchObject({ outcome: 'refreshed' });
      expect(job.attemptsMade).toBe(4);
      expect(fixture.mock.counts()).toMatchObject({ tokenRequests: 5, tokenSuccesses: 2 });
      expect(activeAtRenewal).toEqual([true]);

      const failures = logs.withMessage('token renewal failed');
      const retries = logs.withMessage('renewal retry scheduled');
      expect(failures.map((line) => line.attempt)).toEqual([1, 2, 3]);
      expect(retries.map((line) => line.attempt)).toEqual([2, 3, 4]);
      retries.forEach((retry, index) => {
        const ceilingMs = BACKOFF_DELAY_MS * 2 ** index;
        expect(retry.delayMs).toBeGreaterThanOrEqual(0);
        expect(retry.delayMs).toBeLessThan(ceilingMs);
        expect(retry.delayMs).toBeLessThan(failures[index]!.remainingMs as number);
      });
    });
  });

  describe('when the endpoint returns 429 with Retry-After', () => {
    it('waits at least Retry-After before the next run', async () => {
      fixture.mock.setFaults({ rateLimit: { retryAfterSeconds: 1 }, times: 1 });

      const job = await runFirstJob();

      expect(job.returnvalue).toMatchObject({ outcome: 'refreshed' });
      expect(job.attemptsMade).toBe(2);
      expect(fixture.mock.counts()).toMatchObject({ tokenRequests: 3, tokenSuccesses: 2 });
      const retries = logs.withMessage('renewal retry scheduled');
      expect(retries).toHaveLength(1);
      expect(retries[0]!.delayMs).toBeGreaterThanOrEqual(1_000);
      expect(activeAtRenewal).toEqual([true]);
    });
  });

  describe('when the endpoint rejects the client with 401', () => {
    it('fails the job after one run and one token request', async () => {
      fixture.mock.setFaults({ status: 401 });

      const job = await runFirstJob();
      // Longer than the first retry could wait, so a retry would show in the counts.
      await sleep(2 * BACKOFF_DELAY_MS);

      expect(await job.getState()).toBe('failed');
      expect(job.attemptsMade).toBe(1);
      expect(job.failedReason).toMatch(/^token endpoint rejected the client/);
      expect(fixture.mock.counts().tokenRequests).toBe(2);
      expect(logs.withMessage('renewal retry scheduled')).toEqual([]);
      expect(logs.withMessage('token renewal failed')[0]).toMatchObject({ retrying: false });
      expect((await pod.status()).cooldownMs).toBeGreaterThan(0);
      expect(await pod.getToken()).toBe(firstToken);
    });
  });
});
