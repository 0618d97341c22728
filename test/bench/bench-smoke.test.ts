// A reduced run of the benchmarks for CI. It checks counts only, never times: one token request
// per cold fleet, no Redis command for warm getToken() calls, and a refresh that reaches every pod.
// It uses a redis-server of its own, because the command count would see other test files'
// commands on the shared server.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll } from '../harness/processes.js';
import { type SpawnedRedisServer, spawnRedisServer } from '../harness/redis.js';
import type { BenchContext } from './bench-context.js';
import { runColdStart } from './cold-start.bench.js';
import { runPropagation } from './propagation.bench.js';
import { runRedisCost } from './redis-cost.bench.js';

/** Each case starts worker processes, which load tsx and the packages in a few seconds each. */
const CASE_TIMEOUT_MS = 120_000;

/** Concurrent getToken() calls per process of a cold fleet. */
const CALLERS = 50;

describe('benchmark smoke run', () => {
  let server: SpawnedRedisServer;
  let admin: Redis;
  let context: BenchContext;

  beforeAll(async () => {
    server = await spawnRedisServer();
    admin = new Redis(server.url);
    context = { redisUrl: server.url, admin, log: () => {} };
  });

  afterAll(async () => {
    await killAll();
    await admin.quit();
    await server.stop();
  });

  describe('when the cache serves from memory', () => {
    // The cache holds a 7-day token and its subscription is up, and it runs no timer that talks
    // to Redis, so 1,000 calls send nothing: the bound is exactly 0.
    it('sends no Redis command for 1,000 calls', async () => {
      const { rounds } = await runRedisCost(context, { rounds: 2, calls: 1_000 });

      expect(rounds).toHaveLength(2);
      for (const round of rounds) {
        expect(round.calls).toBe(1_000);
        expect(round.otherCommands).toEqual({});
        expect(round.callCommands - round.idleCommands).toBe(0);
      }
    });
  });

  describe('when fleets of 1 and 3 processes start cold', () => {
    it(
      'sends one token request per fleet',
      async () => {
        const { rounds } = await runColdStart(context, {
          processCounts: [1, 3],
          callers: CALLERS,
          repetitions: 1,
          upstreamLatencyMs: 50,
          variants: ['tokenfleet'],
        });

        expect(rounds.map((round) => [round.processes, round.tokenRequests])).toEqual([
          [1, 1],
          [3, 1],
        ]);
        for (const round of rounds) {
          expect(round.errorCount).toBe(0);
          expect(round.callers).toBe(round.processes * CALLERS);
          expect(round.distinctTokens).toBe(1);
        }
      },
      CASE_TIMEOUT_MS,
    );
  });

  describe('when a refresh is written', () => {
    it(
      'reaches the memory of all 4 pods',
      async () => {
        const result = await runPropagation(context, { pods: 4, rounds: 2, diagnosticRounds: 1 });

        expect(result.missingTokenArrivals).toBe(0);
        expect(result.podsWithEveryToken).toBe(4);
        expect(result.podsWithLastToken).toBe(4);
      },
      CASE_TIMEOUT_MS,
    );
  });
});
