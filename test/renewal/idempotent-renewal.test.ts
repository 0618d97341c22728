// Delivery of a renewal job is at least once, so the renewal of one generation may run twice.
// The second run may come at once in the same process or on another worker, a few seconds later,
// or after the first worker stalled and lost its job lock. Whatever the timing, one token request
// goes out and the second run reports the token as already fresh.
import { setTimeout as sleep } from 'node:timers/promises';
import type { RenewResult } from '@tokenfleet/core';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { killAll, startWorker } from '../harness/processes.js';
import { waitFor } from '../harness/wait-for.js';
import { captureLogs, RenewalFixture } from './renewal-fixture.js';
import {
  type RenewalWorkerConfig,
  type RenewalWorkerResult,
  WORKER_CONFIG_ENV,
  WORKER_READY_LINE,
} from './worker-contract.js';

const WORKER_SCRIPT = new URL('./renewal-worker-process.ts', import.meta.url);

/**
 * A 60 s token stored for 59 s, with its job due 20 s before that. The request timeout and lock
 * TTL leave room for a worker that is stopped for several seconds in the middle of its request.
 */
const CACHE_OPTIONS = {
  skewMs: 1_000,
  refreshAheadMs: 20_000,
  requestTimeoutMs: 20_000,
  lockTtlMs: 30_000,
};

/** BullMQ lock settings short enough that a stalled job is taken over within a few seconds. */
const STALL_OPTIONS = { lockDurationMs: 1_000, stalledIntervalMs: 500 };

const redisUrl = inject('redisUrl');

function outcomesOf(results: RenewResult[]): string[] {
  return results.map((result) => result.outcome).sort();
}

describe('renewal of one generation run twice', () => {
  let fixture: RenewalFixture;

  beforeEach(async () => {
    fixture = await RenewalFixture.start({ name: 'idempotent', redisUrl, expiresIn: 60 });
  });

  afterEach(async () => {
    await killAll();
    await fixture.close();
  });

  describe('when one cache runs it twice at once', () => {
    it('sends one token request and reports the second run as fresh', async () => {
      const cache = fixture.openCache(CACHE_OPTIONS);
      const first = await cache.getTokenInfo();

      const results = await Promise.all([
        cache.renew(first.generation),
        cache.renew(first.generation),
      ]);

      expect(outcomesOf(results)).toEqual(['fresh', 'refreshed']);
      expect(results.map((result) => result.generation)).toEqual([2, 2]);
      expect(fixture.mock.counts().tokenRequests).toBe(2);
    });
  });

  describe('when two caches on separate connections run it at once', () => {
    it('sends one token request and reports the second run as fresh', async () => {
      const caches = [fixture.openCache(CACHE_OPTIONS), fixture.openCache(CACHE_OPTIONS)];
      const first = await caches[0]!.getTokenInfo();

      const results = await Promise.all(caches.map((cache) => cache.renew(first.generation)));

      expect(outcomesOf(results)).toEqual(['fresh', 'refreshed']);
      expect(results.map((result) => result.generation)).toEqual([2, 2]);
      expect(fixture.mock.counts().tokenRequests).toBe(2);
    });
  });

  describe('when it runs again 2 s later', () => {
    it('reports the second run as fresh without a token request', async () => {
      const cache = fixture.openCache(CACHE_OPTIONS);
      const other = fixture.openCache(CACHE_OPTIONS);
      const first = await cache.getTokenInfo();

      const renewed = await cache.renew(first.generation);
      await sleep(2_000);
      const again = await cache.renew(first.generation);
      const elsewhere = await other.renew(first.generation);

      expect(renewed.outcome).toBe('refreshed');
      expect(again).toMatchObject({ outcome: 'fresh', generation: 2 });
      expect(elsewhere).toMatchObject({ outcome: 'fresh', generation: 2 });
      expect(fixture.mock.counts().tokenRequests).toBe(2);
    });
  });

  describe('when a worker stalls mid-request and loses its job lock', () => {
    it('lets another worker run the job, which finds the token fresh', async () => {
      const pod = fixture.openCache({ ...CACHE_OPTIONS, renewal: undefined });
      const queue = fixture.openQueue();
      const first = await pod.getTokenInfo();
      await queue.scheduleRenewal({
        tokenId: pod.id,
        generation: first.generation,
        delayMs: 60_000,
        remainingMs: first.remainingMs,
      });
      const config: RenewalWorkerConfig = {
        redisUrl,
        mockUrl: fixture.mock.url,
        clients: [...fixture.clients],
        keyPrefix: fixture.keyPrefix,
        queueName: fixture.queueName,
        queuePrefix: fixture.queuePrefix,
        cacheOptions: CACHE_OPTIONS,
        workerOptions: STALL_OPTIONS,
      };
      const stalling = startWorker<RenewalWorkerResult>({
        script: WORKER_SCRIPT,
        env: { [WORKER_CONFIG_ENV]: JSON.stringify(config) },
      });
      await stalling.waitForOutput(WORKER_READY_LINE, 30_000);

      // The token request reaches the mock, which holds it. Then the worker stops, so it
      // neither reads the response nor extends its job lock.
      fixture.mock.setFaults({ latencyMs: 2_500, times: 1 });
      await (await queue.getRenewalJob(pod.id, first.generation))!.promote();
      await waitFor(() => fixture.mock.counts().tokenRequests === 2, {
        description: 'the stalling worker to send its token request',
      });
      process.kill(stalling.pid, 'SIGSTOP');

      const logs = captureLogs();
      const takeover = fixture.openCache(CACHE_OPTIONS);
      fixture.startWorker([takeover], { ...STALL_OPTIONS, logger: logs.logger });
      await waitFor(() => logs.withMessage('renewing token').length > 0, {
        timeoutMs: 20_000,
        description: 'the second worker to take over the stalled job',
      });
      process.kill(stalling.pid, 'SIGCONT');

      await fixture.waitForJobState(queue, pod.id, first.generation, ['completed', 'failed']);
      const job = (await queue.getRenewalJob(pod.id, first.generation))!;
      expect(job.finishedOn).toBeDefined();
      expect(job.failedReason).toBeUndefined();
      expect(job.returnvalue).toMatchObject({ outcome: 'fresh', generation: 2 });
      expect(job.stalledCounter).toBe(1);
      expect(fixture.mock.counts()).toMatchObject({ tokenRequests: 2, tokenSuccesses: 2 });
      const renewedLine = await stalling.waitForOutput('"msg":"token renewed"');
      expect(JSON.parse(renewedLine)).toMatchObject({ outcome: 'refreshed', generation: 1 });
      expect(await pod.status()).toMatchObject({ generation: 2, generationCounter: 2 });

      await stalling.kill('SIGTERM');
      const result = await stalling.result;
      expect(result.outcomes).toEqual([]);
    });
  });
});
