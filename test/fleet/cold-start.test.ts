// A fleet of pods that start cold at the same moment: eight worker processes, each with its own
// token cache on one Redis server, share a single token from the mock OAuth server.
import { type MockOAuthServer, startMockOAuthServer } from '@tokenfleet/mock-oauth';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { killAll } from '../harness/processes.js';
import { uniquePrefix } from '../harness/redis.js';
import type { FleetMode, FleetWorkerResult } from './fleet-contract.js';
import { deleteKeys, releaseFleet, startFleet } from './fleet-helpers.js';

/** Worker processes in the fleet. */
const PODS = 8;

/** Concurrent calls per worker process. */
const CALLS_PER_POD = 200;

const redisUrl = inject('redisUrl');

describe('fleet cold start', () => {
  let mock: MockOAuthServer;
  let redis: Redis;
  let prefix: string;

  beforeEach(async () => {
    mock = await startMockOAuthServer({ preset: 'staging' });
    redis = new Redis(redisUrl);
    prefix = uniquePrefix('fleet-cold-start');
  });

  afterEach(async () => {
    await killAll();
    await deleteKeys(redis, prefix);
    await redis.quit();
    await mock.close();
  });

  /** Starts the fleet in `mode`, releases it at once and returns every worker's result. */
  async function runColdFleet(mode: FleetMode): Promise<FleetWorkerResult[]> {
    const startList = `${prefix}:start`;
    const workers = startFleet(PODS, {
      FLEET_MODE: mode,
      FLEET_MOCK_URL: mock.url,
      FLEET_KEY_PREFIX: prefix,
      FLEET_START_LIST: startList,
      FLEET_CALLS: String(CALLS_PER_POD),
    });
    await releaseFleet(redis, startList, workers);
    return Promise.all(workers.map((worker) => worker.result));
  }

  /** Checks that the mock issued one token and that every worker saw that token and no other. */
  function expectOneSharedToken(results: FleetWorkerResult[]): void {
    expect(mock.counts().tokenRequests).toBe(1);
    const issued = mock.issuedTokens();
    expect(issued).toHaveLength(1);

    for (const result of results) {
      expect(result.errors).toEqual([]);
      expect(result.errorCount).toBe(0);
      expect(result.calls).toBe(CALLS_PER_POD);
      expect(result.tokenHashes).toEqual([issued[0]!.tokenHash]);
    }

    // The pod that won the lock fetched the token, and the others read it from Redis.
    const localRefreshes = results.flatMap((result) =>
      result.refreshes.filter((refresh) => refresh.origin === 'local'),
    );
    expect(localRefreshes).toEqual([{ generation: 1, reason: 'missing', origin: 'local' }]);
  }

  describe('when every pod calls getToken() at once', () => {
    it('sends one token request and shares its token', async () => {
      const results = await runColdFleet('get-token');

      expect(results).toHaveLength(PODS);
      expectOneSharedToken(results);
    });
  });

  describe('when every pod calls the resource through createAuthorizedFetch', () => {
    it('gets 200 for every call with one token', async () => {
      const results = await runColdFleet('authorized-fetch');

      expect(results).toHaveLength(PODS);
      expectOneSharedToken(results);
      for (const result of results) {
        expect(result.statuses).toEqual({ '200': CALLS_PER_POD });
        expect(result.unauthorizedAttempts).toBe(0);
      }

      const counts = mock.counts();
      expect(counts.resourceRequests).toBe(PODS * CALLS_PER_POD);
      expect(counts.resourceOk).toBe(PODS * CALLS_PER_POD);
      expect(counts.resourceUnauthorized).toBe(0);
    });
  });
});
