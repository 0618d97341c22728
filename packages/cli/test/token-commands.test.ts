import { computeTokenId, quiqup } from '@tokenfleet/core';
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

/** Token life of the mock's staging preset, in milliseconds. */
const STAGING_LIFETIME_MS = 3_600_000;

describe('tokenfleet token commands', () => {
  let mock: MockOAuthServer;
  let redis: Redis;
  let keyPrefix: string;
  let queueName: string;
  let env: Record<string, string>;
  let tokenId: string;
  let label: string;
  /** The token of generation 1, replaced by later refreshes. */
  let firstToken: string;

  beforeAll(async () => {
    mock = await startMockOAuthServer({ preset: 'staging' });
    redis = openTestRedis();
    keyPrefix = uniqueName('keys');
    queueName = uniqueName('queue');
    env = cleanEnv({
      TOKENFLEET_REDIS_URL: TEST_REDIS_URL,
      TOKENFLEET_KEY_PREFIX: keyPrefix,
      TOKENFLEET_QUEUE: queueName,
      QUIQUP_CLIENT_ID: 'demo-client',
      QUIQUP_CLIENT_SECRET: 'demo-secret',
      QUIQUP_ENVIRONMENT: 'staging',
      QUIQUP_BASE_URL: mock.url,
    });

    const provider = quiqup({
      environment: 'staging',
      clientId: 'demo-client',
      clientSecret: 'demo-secret',
      baseUrl: mock.url,
    });
    tokenId = computeTokenId(provider.identity);
    label = provider.label;
  });

  afterAll(async () => {
    await deleteKeys(redis, `${keyPrefix}:*`);
    await deleteKeys(redis, `{tokenfleet}:${queueName}:*`);
    await redis.quit();
    await mock.close();
  });

  describe('when Redis holds no token', () => {
    it('status prints that no token exists under the prefix', async () => {
      const run = await runTokenfleet(['status'], {
        env: cleanEnv({ TOKENFLEET_REDIS_URL: TEST_REDIS_URL, TOKENFLEET_KEY_PREFIX: keyPrefix }),
      });

      expect(run.stderr).toBe('');
      expect(run.stdout).toBe(`no tokens under key prefix '${keyPrefix}'\n`);
      expect(run.code).toBe(0);
    });

    it('status --json lists the configured client before its first refresh', async () => {
      const run = await runTokenfleet(['status', '--json'], { env });

      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout)).toEqual({
        keyPrefix,
        queue: queueName,
        tokens: [
          {
            tokenId,
            label,
            remainingMs: null,
            generation: null,
            generationCounter: 0,
            refreshedAt: null,
            refreshReason: null,
            cooldownMs: 0,
            renewalJob: null,
          },
        ],
      });
      expect(mock.counts().tokenRequests).toBe(0);
    });
  });

  describe('when get fetches and shares a token', () => {
    it('get prints the token and nothing else', async () => {
      const run = await runTokenfleet(['get'], { env });

      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^\S+\n$/);
      firstToken = run.stdout.trimEnd();
      expect(mock.isTokenActive(firstToken)).toBe(true);
      expect(mock.counts().tokenRequests).toBe(1);
    });

    it('get --json returns the stored token from Redis', async () => {
      const run = await runTokenfleet(['get', '--json'], { env });

      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const output = JSON.parse(run.stdout);
      expect(Object.keys(output)).toEqual(['token', 'remainingMs', 'generation', 'source']);
      expect(output.token).toBe(firstToken);
      expect(output.generation).toBe(1);
      expect(output.source).toBe('redis');
      expect(output.remainingMs).toBeGreaterThan(0);
      expect(output.remainingMs).toBeLessThanOrEqual(STAGING_LIFETIME_MS);
      expect(mock.counts().tokenRequests).toBe(1);
    });

    it('status prints a table row with the renewal job', async () => {
      const run = await runTokenfleet(['status'], { env });

      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const lines = run.stdout.trimEnd().split('\n');
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(
        /^TOKEN ID {26}LABEL {2,}REMAINING {2}GENERATION {2}LAST REFRESH {2,}COOLDOWN {2}RENEWAL JOB$/,
      );
      const row = new RegExp(
        `^${tokenId}  ${label} +\\d+m \\d+s +1 +\\d+m?s ago \\(missing\\) +none +delayed$`,
      );
      expect(lines[1]).toMatch(row);
      expect(run.stdout).not.toContain(firstToken);
    });

    it('status --json shows generation, reason and the delayed renewal job', async () => {
      const run = await runTokenfleet(['status', '--json'], { env });

      expect(run.code).toBe(0);
      const [status] = JSON.parse(run.stdout).tokens;
      expect(status.tokenId).toBe(tokenId);
      expect(status.label).toBe(label);
      expect(status.generation).toBe(1);
      expect(status.generationCounter).toBe(1);
      expect(status.refreshReason).toBe('missing');
      expect(status.cooldownMs).toBe(0);
      expect(status.renewalJob).toEqual({ id: `renew-${tokenId}-1`, state: 'delayed' });
      expect(status.remainingMs).toBeGreaterThan(0);
      expect(Number.isNaN(Date.parse(status.refreshedAt))).toBe(false);
      expect(run.stdout).not.toContain(firstToken);
    });

    it('refresh prints the generation and remaining life, not the token', async () => {
      const run = await runTokenfleet(['refresh'], { env });

      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^refreshed: generation 2, remaining \d+m \d+s\n$/);
      expect(mock.counts().tokenRequests).toBe(2);

      const current = await runTokenfleet(['get'], { env });
      expect(run.stdout).not.toContain(current.stdout.trimEnd());
    });

    it('refresh --json --print-token includes the new token', async () => {
      const run = await runTokenfleet(['refresh', '--json', '--print-token'], { env });

      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const output = JSON.parse(run.stdout);
      expect(Object.keys(output)).toEqual(['generation', 'remainingMs', 'source', 'token']);
      expect(output.generation).toBe(3);
      expect(output.source).toBe('upstream');
      expect(mock.isTokenActive(output.token)).toBe(true);
      expect(mock.counts().tokenRequests).toBe(3);
    });
  });

  describe('when a token is invalidated', () => {
    it('keeps a newer token than the one given', async () => {
      const current = (await runTokenfleet(['get'], { env })).stdout;
      expect(current).not.toBe(`${firstToken}\n`);

      const run = await runTokenfleet(['invalidate', '--token', firstToken], { env });

      expect(run.stderr).toBe('');
      expect(run.stdout).toBe('not deleted: Redis holds another token or none\n');
      expect(run.code).toBe(0);
      const after = await runTokenfleet(['get'], { env });
      expect(after.stdout).toBe(current);
    });

    it('deletes the stored token read from stdin', async () => {
      const current = (await runTokenfleet(['get'], { env })).stdout;

      const run = await runTokenfleet(['invalidate'], { env, input: current });

      expect(run.stderr).toBe('');
      expect(run.stdout).toBe('deleted\n');
      expect(run.code).toBe(0);

      const again = await runTokenfleet(['invalidate', '--json', '--token', current.trimEnd()], {
        env,
      });
      expect(again.stdout).toBe('{"deleted":false}\n');
      expect(again.code).toBe(0);
    });

    it('get fetches a new token after the deletion', async () => {
      const run = await runTokenfleet(['get', '--json'], { env });

      expect(run.code).toBe(0);
      const output = JSON.parse(run.stdout);
      expect(output.source).toBe('upstream');
      expect(output.generation).toBe(4);
      expect(mock.counts().tokenRequests).toBe(4);
    });
  });

  describe('when a runtime step fails', () => {
    it('get names the rejected client in one line and exits 1', async () => {
      const run = await runTokenfleet(['get'], {
        env: { ...env, QUIQUP_CLIENT_ID: 'unknown-client', QUIQUP_CLIENT_SECRET: 'wrong-secret' },
      });

      expect(run.stdout).toBe('');
      expect(run.stderr).toBe(
        'tokenfleet get: token endpoint rejected the client (HTTP 401 invalid_client): ' +
          'check clientId and clientSecret [TOKENFLEET_INVALID_CLIENT]\n',
      );
      expect(run.code).toBe(1);
    });

    it('get names the unreachable Redis server and exits 1', async () => {
      const run = await runTokenfleet(['get', '--redis-url', 'redis://127.0.0.1:1'], { env });

      expect(run.stdout).toBe('');
      expect(run.stderr).toBe(
        'tokenfleet get: cannot connect to Redis at redis://127.0.0.1:1: ' +
          'connect ECONNREFUSED 127.0.0.1:1\n',
      );
      expect(run.code).toBe(1);
    });

    it('status masks the password of the Redis URL', async () => {
      const run = await runTokenfleet(
        ['status', '--redis-url', 'redis://user:hunter2@127.0.0.1:1'],
        {
          env,
        },
      );

      expect(run.stderr).toBe(
        'tokenfleet status: cannot connect to Redis at redis://user:***@127.0.0.1:1: ' +
          'connect ECONNREFUSED 127.0.0.1:1\n',
      );
      expect(run.code).toBe(1);
    });
  });
});
