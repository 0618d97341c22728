// Event and metric contracts of the token cache.
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createTokenCache,
  type RefreshedEvent,
  type TokenCache,
  type TokenCacheOptions,
} from '@tokenfleet/core';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { mockProvider, uniquePrefix, useReviewEnvironment } from './review-helpers.js';

const env = useReviewEnvironment();

function newCache(prefix: string, overrides: Partial<TokenCacheOptions> = {}): TokenCache {
  const cache = createTokenCache({
    redis: env.redisServer.url,
    keyPrefix: prefix,
    provider: mockProvider(env.server),
    ...overrides,
  });
  env.track(cache);
  return cache;
}

async function metricValue(registry: Registry, name: string, labels: Record<string, string>) {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const values = (metric?.values ?? []) as { value: number; labels: Record<string, unknown> }[];
  return values
    .filter((v) => Object.entries(labels).every(([key, value]) => v.labels[key] === value))
    .reduce((sum, v) => sum + v.value, 0);
}

describe('the refreshed event of the pod that refreshed', () => {
  // The `refreshed` message that the write script publishes reaches this pod's own subscriber on
  // another connection, sometimes before the script's reply. The message carries the sender's
  // id, so the pod never takes its own token for another pod's and emits no 'remote' event.
  it('is emitted once, with origin local, for each of 200 refreshes', async () => {
    const cache = newCache(uniquePrefix('review-events'));
    await cache.getToken();
    await sleep(100);
    const events: RefreshedEvent[] = [];
    cache.on('refreshed', (event) => events.push(event));

    for (let i = 0; i < 200; i += 1) {
      await cache.refresh();
    }
    await sleep(200);

    expect(events.filter((event) => event.origin === 'remote')).toEqual([]);
    expect(events).toHaveLength(200);
  }, 60_000);
});

describe('the metrics of refreshes', () => {
  // A response with expires_in 0 is a successful request but a failed refresh.
  it('counts a response with expires_in 0 as a failed refresh', async () => {
    const registry = new Registry();
    const cache = newCache(uniquePrefix('review-metrics'), { metricsRegistry: registry });
    env.server.setFaults({ overrideFields: { expires_in: 0 } });

    await expect(cache.getToken()).rejects.toMatchObject({
      code: 'TOKENFLEET_INVALID_TOKEN_RESPONSE',
    });

    expect(await metricValue(registry, 'tokenfleet_refreshes_total', { outcome: 'failure' })).toBe(
      1,
    );
  });

  // #fetchWithoutRedis counts neither the refresh nor the upstream hit.
  it('counts a token fetched while Redis is down', async () => {
    const registry = new Registry();
    const cache = createTokenCache({
      redis: 'redis://127.0.0.1:1',
      keyPrefix: uniquePrefix('review-metrics-down'),
      provider: mockProvider(env.server),
      redisTimeoutMs: 300,
      metricsRegistry: registry,
    });
    env.track(cache);

    await cache.getToken();

    expect(env.server.counts().tokenRequests).toBe(1);
    expect(await metricValue(registry, 'tokenfleet_refreshes_total', { outcome: 'success' })).toBe(
      1,
    );
    expect(await metricValue(registry, 'tokenfleet_cache_hits_total', { layer: 'upstream' })).toBe(
      1,
    );
  });

  // Callers that joined the flight get the token but are counted nowhere.
  it('counts every token handed out', async () => {
    const registry = new Registry();
    const cache = newCache(uniquePrefix('review-metrics-hits'), { metricsRegistry: registry });

    await Promise.all(Array.from({ length: 10 }, () => cache.getToken()));

    expect(await metricValue(registry, 'tokenfleet_cache_hits_total', {})).toBe(10);
  });
});
