import { randomUUID } from 'node:crypto';
import { quiqup, type TokenProvider } from '@tokenfleet/core';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createRenewalQueue,
  type Refresher,
  type RefresherOptions,
  startRefresher,
} from '../src/index.js';
import {
  destroyQueue,
  openRedis,
  REDIS_URL,
  startTokenEndpoint,
  type TestTokenEndpoint,
  uniqueQueue,
  waitFor,
  waitForJobState,
} from './helpers.js';

/** Counts the sockets, servers and timers that keep the process alive. */
function countResources(): { TCPSocketWrap: number; TCPServerWrap: number; Timeout: number } {
  const resources = process.getActiveResourcesInfo();
  const count = (name: string) => resources.filter((resource) => resource === name).length;
  return {
    TCPSocketWrap: count('TCPSocketWrap'),
    TCPServerWrap: count('TCPServerWrap'),
    Timeout: count('Timeout'),
  };
}

describe('startRefresher', () => {
  let endpoint: TestTokenEndpoint;
  let names: ReturnType<typeof uniqueQueue>;
  let keyPrefix: string;
  let provider: TokenProvider;
  let refresher: Refresher | undefined;
  let redis: Redis;

  beforeEach(async () => {
    endpoint = await startTokenEndpoint(3_600);
    names = uniqueQueue();
    keyPrefix = `tftest-${randomUUID().slice(0, 8)}`;
    provider = quiqup({
      environment: 'staging',
      baseUrl: endpoint.baseUrl,
      clientId: `client-${keyPrefix}`,
      clientSecret: 'refresher-test-secret',
    });
    redis = openRedis();
    refresher = undefined;
  });

  afterEach(async () => {
    await refresher?.close();
    const cleanup = createRenewalQueue({
      connection: redis,
      queueName: names.queueName,
      prefix: names.prefix,
    });
    await destroyQueue(cleanup);
    const keys = await redis.keys(`${keyPrefix}:*`);
    if (keys.length > 0) {
      await redis.del(...keys);
    }
    await redis.quit();
    await endpoint.close();
  });

  async function start(options: Partial<RefresherOptions> = {}): Promise<Refresher> {
    refresher = await startRefresher({
      redis: REDIS_URL,
      providers: [provider],
      queueName: names.queueName,
      queuePrefix: names.prefix,
      keyPrefix,
      port: 0,
      sweepIntervalMs: 200,
      ...options,
    });
    return refresher;
  }

  describe('GET /healthz', () => {
    it('returns 200 while Redis answers and the worker runs', async () => {
      const started = await start();

      const response = await fetch(`${started.url}/healthz`);

      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({
        status: 'ok',
        checks: { redis: { ok: true }, worker: { ok: true } },
      });
    });

    it('returns 503 when Redis does not answer', async () => {
      const client = openRedis();
      const started = await start({ redis: client });
      client.disconnect();

      const response = await fetch(`${started.url}/healthz`);
      const body = (await response.json()) as {
        status: string;
        checks: Record<string, { ok: boolean }>;
      };

      expect(response.status).toBe(503);
      expect(body.status).toBe('unavailable');
      expect(body.checks.redis?.ok).toBe(false);
      expect(body.checks.worker?.ok).toBe(true);
    });
  });

  describe('GET /readyz', () => {
    it('returns 200 once the worker is ready and the first sweep ran', async () => {
      const started = await start();

      const response = await waitFor('readiness', async () => {
        const answer = await fetch(`${started.url}/readyz`);
        return answer.status === 200 ? answer : undefined;
      });

      expect(await response.json()).toEqual({
        status: 'ok',
        checks: { worker: { ok: true }, sweep: { ok: true } },
      });
    });
  });

  describe('GET /metrics', () => {
    it('serves the refresher and cache metrics', async () => {
      const started = await start();
      await started.caches[0]!.getToken();

      const response = await fetch(`${started.url}/metrics`);
      const body = await response.text();

      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toContain('text/plain');
      expect(body).toContain('# TYPE tokenfleet_renewals_total counter');
      expect(body).toContain('# TYPE tokenfleet_renewal_lag_seconds histogram');
      expect(body).toContain('# TYPE tokenfleet_renewal_jobs_recreated_total counter');
      expect(body).toContain('# TYPE tokenfleet_token_expiry_seconds gauge');
      expect(body).toContain('# TYPE tokenfleet_token_request_duration_seconds histogram');
    });
  });

  describe('other requests', () => {
    it('returns 404 for an unknown path', async () => {
      const started = await start();

      const response = await fetch(`${started.url}/nope`);

      expect(response.status).toBe(404);
      await response.text();
    });

    it('returns 405 for POST', async () => {
      const started = await start();

      const response = await fetch(`${started.url}/healthz`, { method: 'POST' });

      expect(response.status).toBe(405);
      expect(response.headers.get('allow')).toBe('GET, HEAD');
      await response.text();
    });
  });

  describe('when a stored token reaches its margin', () => {
    it('renews it through the job of its generation', async () => {
      endpoint.expiresInSeconds = 2;
      const started = await start({ cacheOptions: { skewMs: 0, refreshAheadMs: 1_700 } });
      const cache = started.caches[0]!;

      const first = await cache.getTokenInfo();
      expect(first.generation).toBe(1);
      await waitForJobState(started.queue, cache.id, 1, ['completed']);

      const job = await started.queue.getRenewalJob(cache.id, 1);
      expect(job?.returnvalue.outcome).toBe('refreshed');
      expect(job?.returnvalue.generation).toBe(2);
      expect((await cache.status()).generation).toBeGreaterThanOrEqual(2);
    });
  });

  describe('when the job of a stored token is deleted', () => {
    it('re-creates it with the next sweep', async () => {
      const started = await start();
      const cache = started.caches[0]!;
      await cache.getToken();
      await waitForJobState(started.queue, cache.id, 1, ['delayed']);

      await (await started.queue.getRenewalJob(cache.id, 1))?.remove();

      await waitForJobState(started.queue, cache.id, 1, ['delayed']);
    });
  });

  describe('close', () => {
    it('stops the server, the worker and the sweep', async () => {
      const started = await start();
      await waitFor('readiness', () => (started.sweep.completedRuns > 0 ? true : undefined));

      await started.close();
      refresher = undefined;

      expect(started.worker.isRunning()).toBe(false);
      await expect(fetch(`${started.url}/healthz`)).rejects.toThrow();
      expect(await started.close()).toBeUndefined();
    });

    it('releases every socket, server and timer it opened', async () => {
      const baseline = countResources();
      const started = await start();
      await started.caches[0]!.getToken();
      await waitFor('readiness', () => (started.sweep.completedRuns > 0 ? true : undefined));
      expect(countResources().TCPSocketWrap).toBeGreaterThan(baseline.TCPSocketWrap);

      await started.close();
      refresher = undefined;

      // A socket that was sent QUIT leaves the list once the server closes it, a moment later.
      const after = await waitFor('the sockets to close', () => {
        const current = countResources();
        return current.TCPSocketWrap <= baseline.TCPSocketWrap ? current : undefined;
      });
      expect(after.TCPSocketWrap).toBeLessThanOrEqual(baseline.TCPSocketWrap);
      expect(after.TCPServerWrap).toBeLessThanOrEqual(baseline.TCPServerWrap);
      expect(after.Timeout).toBeLessThanOrEqual(baseline.Timeout);
    });

    it('leaves a passed connection open', async () => {
      const client = openRedis();
      const started = await start({ redis: client });

      await started.close();
      refresher = undefined;

      expect(await client.ping()).toBe('PONG');
      await client.quit();
    });
  });
});
