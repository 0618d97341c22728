import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repliesToPing } from '../src/redis-launcher.js';
import {
  BIN_PATH,
  cleanEnv,
  countKeys,
  openTestRedis,
  PACKAGE_DIR,
  runTokenfleet,
  TEST_REDIS_URL,
} from './helpers.js';

describe('tokenfleet demo', () => {
  let redis: Redis;

  beforeAll(() => {
    redis = openTestRedis();
  });

  afterAll(async () => {
    await redis.quit();
  });

  describe('when it starts its own redis-server', () => {
    it('shares one token across the workers', async () => {
      const run = await runTokenfleet(['demo', '--workers', '2', '--calls', '20', '--json']);

      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const summary = JSON.parse(run.stdout);
      expect(summary).toMatchObject({
        passed: true,
        problems: [],
        workers: 2,
        callsPerWorker: 20,
        calls: 40,
        successes: 40,
        failures: 0,
        unauthorized: 0,
        tokenRequests: 1,
        distinctTokens: 1,
        sharedToken: true,
        redis: 'redis-server',
      });
      expect(summary.keyPrefix).toMatch(/^tokenfleet-demo-[0-9a-f]{8}$/);
    });

    it('prints progress and a summary for people', async () => {
      const run = await runTokenfleet(['demo', '--workers', '1', '--calls', '5']);

      expect(run.code).toBe(0);
      expect(run.stderr).toMatch(/^tokenfleet demo: 1 workers x 5 calls\n/);
      expect(run.stderr).toMatch(
        /^ {2}redis {6}redis-server on 127\.0\.0\.1:\d+ \(started for this run\)$/m,
      );
      expect(run.stderr).toMatch(/^ {2}stopped everything that the demo started\n$/m);
      expect(run.stdout).toMatch(/^successes {7}5$/m);
      expect(run.stdout).toMatch(/^token requests {2}1 \(expected 1\)$/m);
      expect(run.stdout).toMatch(/^shared token {4}yes, one token for every worker$/m);
      expect(run.stdout).toMatch(/^result {10}passed\n$/m);
    });
  });

  describe('when REDIS_URL names a server', () => {
    it('uses it and deletes the keys of the run', async () => {
      const run = await runTokenfleet(['demo', '--workers', '2', '--calls', '10', '--json'], {
        env: cleanEnv({ REDIS_URL: TEST_REDIS_URL }),
      });

      expect(run.code).toBe(0);
      const summary = JSON.parse(run.stdout);
      expect(summary.redis).toBe('url');
      expect(summary.tokenRequests).toBe(1);
      expect(summary.failures).toBe(0);
      expect(await countKeys(redis, `${summary.keyPrefix}:*`)).toBe(0);
      expect(await countKeys(redis, `{tokenfleet}:${summary.queueName}:*`)).toBe(0);
    });
  });

  describe('when no Redis can be found', () => {
    it('exits 1 saying how to get one', async () => {
      const run = await runTokenfleet(['demo', '--workers', '1', '--calls', '1'], {
        env: { PATH: '/nonexistent', HOME: cleanEnv().HOME! },
      });

      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(/^tokenfleet demo: 1 workers x 1 calls\n/);
      expect(run.stderr).toContain(
        'tokenfleet demo: no Redis server found (redis-server: not found on PATH; testcontainers: ' +
          'not installed or no Docker engine responded): set REDIS_URL or pass --redis-url, or ' +
          'install redis-server (apt-get install redis-server)\n',
      );
      expect(run.code).toBe(1);
    });
  });

  describe('when SIGINT arrives', () => {
    it('stops its workers and redis-server and exits 130', async () => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', BIN_PATH, 'demo', '--workers', '2'],
        {
          cwd: PACKAGE_DIR,
          env: cleanEnv(),
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
      let stderr = '';
      let redisPort = 0;
      for await (const line of createInterface({ input: child.stderr })) {
        stderr += `${line}\n`;
        const match = /redis-server on 127\.0\.0\.1:(\d+)/.exec(line);
        if (match) {
          redisPort = Number(match[1]);
        }
        if (line.includes('workers    starting')) {
          child.kill('SIGINT');
        }
      }
      const code = await exited;

      expect(stderr).toMatch(
        /tokenfleet demo: interrupted by SIGINT; stopped everything it started\n$/,
      );
      expect(code).toBe(130);
      expect(redisPort).toBeGreaterThan(0);
      expect(await repliesToPing(redisPort)).toBe(false);
    });
  });
});
