import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createTokenCache, quiqup } from '@tokenfleet/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRenewalQueue, type RenewalQueue } from '../src/index.js';
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

const BIN = fileURLToPath(new URL('../src/bin.ts', import.meta.url));
const SECRET = 'bin-test-client-secret';

/** A running `tokenfleet-refresher` process with its output so far. */
interface BinProcess {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exited: Promise<number | null>;
  logLine(message: string): Record<string, unknown> | undefined;
}

function runBin(env: Record<string, string>): BinProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', BIN], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const run: BinProcess = {
    child,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
    logLine: (message) =>
      run.stdout
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .find((line) => line.msg === message),
  };
  child.stdout?.on('data', (chunk: Buffer) => {
    run.stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    run.stderr += chunk.toString();
  });
  return run;
}

describe('tokenfleet-refresher', () => {
  describe('when the configuration is invalid', () => {
    it('prints one line naming the variable and exits with code 2', async () => {
      const run = runBin({
        QUIQUP_CLIENT_ID: 'client-1',
        QUIQUP_CLIENT_SECRET: SECRET,
        QUIQUP_ENVIRONMENT: 'staging',
        TOKENFLEET_REFRESHER_PORT: 'abc',
      });

      expect(await run.exited).toBe(2);
      expect(run.stderr).toBe(
        'tokenfleet-refresher: invalid configuration: TOKENFLEET_REFRESHER_PORT must be an integer from 0 to 65535 (received "abc")\n',
      );
      expect(run.stdout).toBe('');
    });
  });

  describe('when it runs', () => {
    let endpoint: TestTokenEndpoint;
    let names: ReturnType<typeof uniqueQueue>;
    let keyPrefix: string;
    let env: Record<string, string>;
    let run: BinProcess | undefined;
    let queue: RenewalQueue;

    beforeEach(async () => {
      endpoint = await startTokenEndpoint(3_600);
      names = uniqueQueue();
      keyPrefix = `tftest-${randomUUID().slice(0, 8)}`;
      queue = createRenewalQueue({ connection: REDIS_URL, ...names });
      env = {
        TOKENFLEET_REDIS_URL: REDIS_URL,
        QUIQUP_CLIENT_ID: `client-${keyPrefix}`,
        QUIQUP_CLIENT_SECRET: SECRET,
        QUIQUP_ENVIRONMENT: 'staging',
        QUIQUP_BASE_URL: endpoint.baseUrl,
        TOKENFLEET_QUEUE: names.queueName,
        TOKENFLEET_QUEUE_PREFIX: names.prefix,
        TOKENFLEET_KEY_PREFIX: keyPrefix,
        TOKENFLEET_REFRESHER_PORT: '0',
        TOKENFLEET_SWEEP_INTERVAL_MS: '200',
        LOG_LEVEL: 'debug',
      };
      run = undefined;
    });

    afterEach(async () => {
      if (run !== undefined && run.child.exitCode === null) {
        run.child.kill('SIGKILL');
        await run.exited;
      }
      await destroyQueue(queue);
      const redis = openRedis();
      const keys = await redis.keys(`${keyPrefix}:*`);
      if (keys.length > 0) {
        await redis.del(...keys);
      }
      await redis.quit();
      await endpoint.close();
    });

    async function startBin(extraEnv: Record<string, string> = {}): Promise<string> {
      run = runBin({ ...env, ...extraEnv });
      const listening = await waitFor(
        'the health server',
        () => run!.logLine('health server listening'),
        15_000,
      );
      return listening.url as string;
    }

    it('serves /healthz and exits with code 0 on SIGTERM', async () => {
      const url = await startBin();

      const health = await fetch(`${url}/healthz`);
      expect(health.status).toBe(200);
      await health.text();
      run!.child.kill('SIGTERM');

      expect(await run!.exited).toBe(0);
      expect(run!.logLine('shutdown signal received')).toMatchObject({ signal: 'SIGTERM' });
      expect(run!.logLine('renewal worker closed')).toBeDefined();
      expect(run!.logLine('refresher stopped')).toBeDefined();
      expect(run!.stdout).not.toContain(SECRET);
    });

    describe('when a renewal hangs at shutdown', () => {
      /** Stores a token from this process, so that the refresher's worker starts its renewal. */
      async function startHangingRenewal(): Promise<void> {
        endpoint.expiresInSeconds = 2;
        const redis = openRedis();
        const cache = createTokenCache({
          redis,
          provider: quiqup({
            environment: 'staging',
            baseUrl: endpoint.baseUrl,
            clientId: env.QUIQUP_CLIENT_ID!,
            clientSecret: SECRET,
          }),
          keyPrefix,
          skewMs: 0,
          refreshAheadMs: 1_700,
          renewal: queue,
        });
        await cache.getToken();
        endpoint.hang = true;
        await cache.close();
        await redis.quit();
        await waitForJobState(queue, cache.id, 1, ['active'], 5_000);
      }

      it('hands the job back after the timeout and exits with code 0', async () => {
        await startBin({ TOKENFLEET_SHUTDOWN_TIMEOUT_MS: '300' });
        await startHangingRenewal();

        run!.child.kill('SIGTERM');

        expect(await run!.exited).toBe(0);
        expect(
          run!.logLine('renewal job handed back: still running at the shutdown timeout'),
        ).toBeDefined();
      });

      it('exits with code 1 on a second signal', async () => {
        await startBin({ TOKENFLEET_SHUTDOWN_TIMEOUT_MS: '20000' });
        await startHangingRenewal();

        run!.child.kill('SIGTERM');
        await waitFor('the first signal', () => run!.logLine('shutdown signal received'));
        run!.child.kill('SIGINT');

        expect(await run!.exited).toBe(1);
        expect(run!.logLine('second shutdown signal received; exiting at once')).toMatchObject({
          signal: 'SIGINT',
        });
      });
    });
  });
});
