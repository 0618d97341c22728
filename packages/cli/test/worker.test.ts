import { type MockOAuthServer, startMockOAuthServer } from '@tokenfleet/mock-oauth';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanEnv,
  deleteKeys,
  openTestRedis,
  runTokenfleet,
  TEST_REDIS_URL,
  uniqueName,
} from './helpers.js';

describe('tokenfleet worker', () => {
  let mock: MockOAuthServer;
  let redis: Redis;
  let keyPrefix: string;
  let queueName: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    mock = await startMockOAuthServer({ preset: 'staging' });
    redis = openTestRedis();
    keyPrefix = uniqueName('worker-keys');
    queueName = uniqueName('worker-queue');
    env = cleanEnv({
      TOKENFLEET_REDIS_URL: TEST_REDIS_URL,
      TOKENFLEET_KEY_PREFIX: keyPrefix,
      TOKENFLEET_QUEUE: queueName,
      QUIQUP_CLIENT_ID: 'demo-client',
      QUIQUP_CLIENT_SECRET: 'demo-secret',
      QUIQUP_ENVIRONMENT: 'staging',
      QUIQUP_BASE_URL: mock.url,
    });
  });

  afterAll(async () => {
    await deleteKeys(redis, `${keyPrefix}:*`);
    await deleteKeys(redis, `{tokenfleet}:${queueName}:*`);
    await redis.quit();
    await mock.close();
  });

  it('logs one pino line per round and shares one token', async () => {
    const run = await runTokenfleet(
      ['worker', '--rounds', '2', '--concurrency', '3', '--interval-ms', '10'],
      { env },
    );

    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = run.stdout
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line));
    const rounds = lines.filter((line) => line.msg === 'round finished');
    expect(
      rounds.map((line) => [line.component, line.round, line.ok, line.unauthorized, line.errors]),
    ).toEqual([
      ['worker', 1, 3, 0, 0],
      ['worker', 2, 3, 0, 0],
    ]);
    expect(lines.at(-1)).toMatchObject({ msg: 'worker stopped', failedCalls: 0 });
    expect(mock.counts().tokenRequests).toBe(1);
    expect(mock.counts().resourceOk).toBe(6);
    expect(run.stdout).not.toContain('demo-secret');
    const token = (await runTokenfleet(['get'], { env })).stdout.trimEnd();
    expect(token).not.toBe('');
    expect(run.stdout).not.toContain(token);
  });
});
