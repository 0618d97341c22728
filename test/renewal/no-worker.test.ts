// No renewal worker runs when a token's renewal falls due: the cache's overdue gauge rises, and
// at half the margin getToken() refreshes in the pod, with a warning, before the token expires.
import { setTimeout as sleep } from 'node:timers/promises';
import type { RefreshedEvent } from '@tokenfleet/core';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { waitFor } from '../harness/wait-for.js';
import { captureLogs, PINO_WARN, RenewalFixture } from './renewal-fixture.js';

/**
 * A 4 s token stored for 3.8 s less the request time. Its job is due 1.6 s before the stored
 * end (at about 2.2 s), and the pod refreshes on its own at half that margin (at about 3 s).
 */
const CACHE_OPTIONS = { skewMs: 200, refreshAheadMs: 1_600 };

/** Pause between two getToken() calls of the pod. */
const CALL_INTERVAL_MS = 20;

const OVERDUE_MESSAGE = 'renewal overdue, refreshing ahead in this pod';

const redisUrl = inject('redisUrl');

describe('token cache without a renewal worker', () => {
  let fixture: RenewalFixture;

  beforeEach(async () => {
    fixture = await RenewalFixture.start({ name: 'no-worker', redisUrl, expiresIn: 4 });
  });

  afterEach(async () => {
    await fixture.close();
  });

  it('shows the overdue renewal and refreshes lazily before expiry', async () => {
    const logs = captureLogs();
    const registry = new Registry();
    const pod = fixture.openCache({
      ...CACHE_OPTIONS,
      logger: logs.logger,
      metricsRegistry: registry,
    });
    const queue = fixture.openQueue();
    const overdueSeconds = async (): Promise<number> => {
      const metric = await registry.getSingleMetric('tokenfleet_renewal_overdue_seconds')!.get();
      return metric.values.find((value) => value.labels.token_id === pod.id)?.value ?? -1;
    };

    const firstToken = await pod.getToken();
    const refreshes: RefreshedEvent[] = [];
    pod.on('refreshed', (event) => refreshes.push(event));
    expect(await overdueSeconds()).toBe(0);
    expect(await queue.getRenewalJobState(pod.id, 1)).toBe('delayed');

    // No caller asks for a token while the renewal is overdue but the pod's margin is not reached.
    const overdue = await waitFor(
      async () => {
        const seconds = await overdueSeconds();
        return seconds > 0 ? seconds : undefined;
      },
      { description: 'the renewal to be overdue' },
    );
    expect(overdue).toBeGreaterThan(0);
    expect(refreshes).toEqual([]);
    expect(logs.withMessage(OVERDUE_MESSAGE)).toEqual([]);

    // Callers keep asking until the first token has expired at the token endpoint.
    const expiredServed: number[] = [];
    let calls = 0;
    while (fixture.mock.isTokenActive(firstToken)) {
      const token = await pod.getToken();
      calls += 1;
      if (!fixture.mock.isTokenActive(token)) {
        expiredServed.push(calls);
      }
      await sleep(CALL_INTERVAL_MS);
    }
    const afterExpiry = await pod.getToken();

    expect(expiredServed).toEqual([]);
    expect(fixture.mock.isTokenActive(afterExpiry)).toBe(true);
    expect(afterExpiry).not.toBe(firstToken);
    expect(fixture.mock.counts().tokenRequests).toBe(2);
    expect(refreshes).toHaveLength(1);
    expect(refreshes[0]).toMatchObject({ generation: 2, reason: 'refresh-ahead', origin: 'local' });
    const warnings = logs.withMessage(OVERDUE_MESSAGE);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: PINO_WARN, generation: 1, tokenId: pod.id });
    expect(warnings[0]!.overdueMs).toBeGreaterThan(0);
    expect(await overdueSeconds()).toBe(0);
    expect(await queue.getRenewalJobState(pod.id, 2)).toBe('delayed');
  });
});
