import { InvalidClientError, type RenewResult, TokenEndpointError } from '@tokenfleet/core';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createRenewalQueue,
  type RenewalQueue,
  type RenewalWorker,
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

describe('startRenewalWorker', () => {
  let names: ReturnType<typeof uniqueQueue>;
  let queue: RenewalQueue;
  let worker: RenewalWorker | undefined;
  let cache: FakeCache;
  let registry: Registry;

  beforeEach(() => {
    names = uniqueQueue();
    queue = createRenewalQueue({
      connection: REDIS_URL,
      ...names,
      attempts: 5,
      backoffDelayMs: 20,
    });
    cache = new FakeCache();
    registry = new Registry();
    worker = undefined;
  });

  afterEach(async () => {
    await worker?.close();
    await destroyQueue(queue);
  });

  function startWorker(
    options: { shutdownTimeoutMs?: number; caches?: FakeCache[] } = {},
  ): RenewalWorker {
    worker = startRenewalWorker({
      connection: REDIS_URL,
      caches: options.caches ?? [cache],
      ...names,
      shutdownTimeoutMs: options.shutdownTimeoutMs,
      metricsRegistry: registry,
    });
    return worker;
  }

  async function renewalCount(outcome: string): Promise<number> {
    const metric = await registry.getSingleMetric('tokenfleet_renewals_total')?.get();
    return metric?.values.find((value) => value.labels.outcome === outcome)?.value ?? 0;
  }

  describe('when renew returns an outcome', () => {
    it.each<RenewResult['outcome']>(['refreshed', 'fresh', 'superseded'])(
      'returns the %s result as the job value',
      async (outcome) => {
        cache.onRenew = async (generation) => ({
          outcome,
          generation: generation + 1,
          remainingMs: 30_000,
        });
        startWorker();

        await queue.scheduleRenewal({
          tokenId: cache.id,
          generation: 4,
          delayMs: 200,
          remainingMs: 60_000,
        });
        await waitForJobState(queue, cache.id, 4, ['completed']);

        const job = await queue.getRenewalJob(cache.id, 4);
        expect(job?.returnvalue).toEqual({ outcome, generation: 5, remainingMs: 30_000 });
        expect(job?.attemptsMade).toBe(1);
        expect(cache.renewCalls).toEqual([4]);
        expect(await renewalCount(outcome)).toBe(1);
      },
    );
  });

  describe('when the token endpoint rejects the client', () => {
    it('fails the job after one attempt', async () => {
      cache.onRenew = async () => {
        throw new InvalidClientError('token endpoint answered 401 invalid_client', { status: 401 });
      };
      startWorker();

      await queue.scheduleRenewal({
        tokenId: cache.id,
        generation: 1,
        delayMs: 0,
        remainingMs: 60_000,
      });
      await waitForJobState(queue, cache.id, 1, ['failed']);

      const job = await queue.getRenewalJob(cache.id, 1);
      expect(job?.attemptsMade).toBe(1);
      expect(job?.failedReason).toContain('token endpoint rejected the client');
      expect(job?.failedReason).toContain('invalid_client');
      expect(cache.renewCalls).toEqual([1]);
      expect(await renewalCount('unrecoverable')).toBe(1);
    });
  });

  describe('when renew fails with a transient error', () => {
    it('retries until a run succeeds', async () => {
      let failures = 0;
      cache.onStatus = async () => cache.storedStatus(1, 60_000);
      cache.onRenew = async (generation) => {
        if (failures < 2) {
          failures += 1;
          throw new TokenEndpointError('token endpoint answered 503', { status: 503 });
        }
        return { outcome: 'refreshed', generation: generation + 1, remainingMs: 60_000 };
      };
      startWorker();

      await queue.scheduleRenewal({
        tokenId: cache.id,
        generation: 1,
        delayMs: 0,
        remainingMs: 60_000,
      });
      await waitForJobState(queue, cache.id, 1, ['completed']);

      const job = await queue.getRenewalJob(cache.id, 1);
      expect(job?.attemptsMade).toBe(3);
      expect(job?.returnvalue.outcome).toBe('refreshed');
      expect(cache.renewCalls).toEqual([1, 1, 1]);
      expect(await renewalCount('failed')).toBe(2);
      expect(await renewalCount('refreshed')).toBe(1);
    });

    it('fails after the configured attempts', async () => {
      cache.onStatus = async () => cache.storedStatus(1, 60_000);
      cache.onRenew = async () => {
        throw new TokenEndpointError('token endpoint answered 502', { status: 502 });
      };
      startWorker();

      await queue.scheduleRenewal({
        tokenId: cache.id,
        generation: 1,
        delayMs: 0,
        remainingMs: 60_000,
      });
      await waitForJobState(queue, cache.id, 1, ['failed']);

      const job = await queue.getRenewalJob(cache.id, 1);
      expect(job?.attemptsMade).toBe(5);
      expect(job?.failedReason).toBe('token endpoint answered 502');
      expect(cache.renewCalls).toHaveLength(5);
    });

    it('stops retrying when Retry-After passes the token life', async () => {
      cache.onStatus = async () => cache.storedStatus(1, 400);
      cache.onRenew = async () => {
        throw new TokenEndpointError('token endpoint answered 503', {
          status: 503,
          retryAfterMs: 5_000,
        });
      };
      startWorker();

      await queue.scheduleRenewal({
        tokenId: cache.id,
        generation: 1,
        delayMs: 0,
        remainingMs: 400,
      });
      await waitForJobState(queue, cache.id, 1, ['failed']);

      const job = await queue.getRenewalJob(cache.id, 1);
      expect(job?.attemptsMade).toBe(1);
      expect(cache.renewCalls).toEqual([1]);
    });

    it('waits Retry-After before the next run', async () => {
      let failed = false;
      cache.onStatus = async () => cache.storedStatus(1, 60_000);
      cache.onRenew = async (generation) => {
        if (!failed) {
          failed = true;
          throw new TokenEndpointError('token endpoint answered 429', {
            status: 429,
            retryAfterMs: 300,
          });
        }
        return { outcome: 'refreshed', generation: generation + 1, remainingMs: 60_000 };
      };
      startWorker();

      await queue.scheduleRenewal({
        tokenId: cache.id,
        generation: 1,
        delayMs: 0,
        remainingMs: 60_000,
      });
      await waitFor('the first run', () => (cache.renewCalls.length === 1 ? true : undefined));

      const retry = await waitFor('the retry to be delayed', async () => {
        const job = await queue.getRenewalJob(cache.id, 1);
        return job?.attemptsMade === 1 ? job : undefined;
      });
      expect(retry.delay).toBe(300);
      await waitForJobState(queue, cache.id, 1, ['completed']);
    });
  });

  describe('when no cache holds the token', () => {
    it('fails the job as unrecoverable', async () => {
      startWorker();

      await queue.scheduleRenewal({
        tokenId: 'ffffffffffffffffffffffffffffffff',
        generation: 2,
        delayMs: 0,
        remainingMs: 60_000,
      });
      await waitForJobState(queue, 'ffffffffffffffffffffffffffffffff', 2, ['failed']);

      const job = await queue.getRenewalJob('ffffffffffffffffffffffffffffffff', 2);
      expect(job?.attemptsMade).toBe(1);
      expect(job?.failedReason).toContain('this worker holds no provider for it');
      expect(job?.failedReason).toContain(`queue "${names.queueName}"`);
      expect(cache.renewCalls).toEqual([]);
    });
  });

  describe('when close finds a job still running', () => {
    it('hands the job back to the queue after the shutdown timeout', async () => {
      cache.onRenew = () => new Promise<RenewResult>(() => {});
      const running = startWorker({ shutdownTimeoutMs: 200 });

      await queue.scheduleRenewal({
        tokenId: cache.id,
        generation: 9,
        delayMs: 0,
        remainingMs: 60_000,
      });
      await waitForJobState(queue, cache.id, 9, ['active']);
      await running.close();
      worker = undefined;

      expect(await queue.getRenewalJobState(cache.id, 9)).toBe('waiting');
      expect(running.isRunning()).toBe(false);
    });

    it('lets a job finish within the shutdown timeout', async () => {
      let finish: (result: RenewResult) => void = () => {};
      cache.onRenew = () =>
        new Promise<RenewResult>((resolve) => {
          finish = resolve;
        });
      const running = startWorker({ shutdownTimeoutMs: 5_000 });

      await queue.scheduleRenewal({
        tokenId: cache.id,
        generation: 3,
        delayMs: 0,
        remainingMs: 60_000,
      });
      await waitForJobState(queue, cache.id, 3, ['active']);
      const closed = running.close();
      setTimeout(() => finish({ outcome: 'refreshed', generation: 4, remainingMs: 60_000 }), 100);
      await closed;
      worker = undefined;

      expect(await queue.getRenewalJobState(cache.id, 3)).toBe('completed');
    });
  });

  describe('when caches hold the same token twice', () => {
    it('throws a TypeError naming the token', () => {
      const twin = new FakeCache(cache.id);

      const start = () => startRenewalWorker({ connection: REDIS_URL, caches: [cache, twin] });

      expect(start).toThrow(`"options.caches" contains two caches for token ${cache.id}`);
    });
  });

  describe('when a job runs', () => {
    it('logs the start and the outcome with the job ids', async () => {
      const logs = captureLogs();
      worker = startRenewalWorker({
        connection: REDIS_URL,
        caches: [cache],
        ...names,
        logger: logs.logger,
      });

      await queue.scheduleRenewal({
        tokenId: cache.id,
        generation: 6,
        delayMs: 0,
        remainingMs: 60_000,
      });
      await waitForJobState(queue, cache.id, 6, ['completed']);

      const ids = { tokenId: cache.id, generation: 6, jobId: `renew-${cache.id}-6` };
      expect(logs.find('renewing token')).toMatchObject({ ...ids, component: 'renewal-worker' });
      expect(logs.find('token renewed')).toMatchObject({ ...ids, outcome: 'refreshed' });
    });

    it('logs a skipped renewal with its outcome', async () => {
      const logs = captureLogs();
      cache.onRenew = async () => ({ outcome: 'superseded', generation: 8, remainingMs: 50_000 });
      worker = startRenewalWorker({
        connection: REDIS_URL,
        caches: [cache],
        ...names,
        logger: logs.logger,
      });

      await queue.scheduleRenewal({
        tokenId: cache.id,
        generation: 6,
        delayMs: 0,
        remainingMs: 60_000,
      });
      await waitForJobState(queue, cache.id, 6, ['completed']);

      expect(logs.find('renewal skipped')).toMatchObject({ generation: 6, outcome: 'superseded' });
    });
  });

  it('reports ready once connected', async () => {
    const started = startWorker();

    await started.waitUntilReady();

    expect(started.isReady()).toBe(true);
    expect(started.isRunning()).toBe(true);
  });
});
