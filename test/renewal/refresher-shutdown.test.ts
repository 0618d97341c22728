// SIGTERM reaches the tokenfleet-refresher service while a renewal job waits for the token
// endpoint. The job either finishes within TOKENFLEET_SHUTDOWN_TIMEOUT_MS or goes back to the
// queue for another worker. Either way the service closes its parts in order, logs each step and
// exits 0.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { TokenCache } from '@tokenfleet/core';
import type { RenewalQueue } from '@tokenfleet/refresher';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { killOnExit } from '../harness/child-cleanup.js';
import { REPO_ROOT } from '../harness/processes.js';
import { waitFor } from '../harness/wait-for.js';
import { RenewalFixture } from './renewal-fixture.js';

const BIN = fileURLToPath(new URL('../../packages/refresher/src/bin.ts', import.meta.url));

/** A 60 s token stored for 59 s, with its job due 20 s before that, in the pods and the service. */
const CACHE_OPTIONS = { skewMs: 1_000, refreshAheadMs: 20_000 };

/** The service's bound for each shutdown step other than the worker's (CLOSE_STEP_TIMEOUT_MS). */
const CLOSE_STEP_TIMEOUT_MS = 5_000;

/** Room for a loaded machine on top of the service's own shutdown bound. */
const EXIT_SLACK_MS = 5_000;

/** The shutdown steps that the service logs, in order. */
const SHUTDOWN_STEPS = [
  'health server stopped accepting connections',
  'renewal sweep stopped',
  'renewal worker closed',
  'token caches closed',
  'renewal queue closed',
  'redis connection closed',
  'health server closed',
];

const redisUrl = inject('redisUrl');

/** A running service with its pino lines so far. */
interface ServiceProcess {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  stderr: string;
  exited: Promise<number | null>;
  /** Index of the first line with `msg` and the given fields, or -1 when there is none. */
  indexOf(message: string, fields?: Record<string, unknown>): number;
}

function startService(env: Record<string, string>): ServiceProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', BIN], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  killOnExit(child);
  const service: ServiceProcess = {
    child,
    lines: [],
    stderr: '',
    exited: once(child, 'exit').then(([code]) => code as number | null),
    indexOf: (message, fields = {}) =>
      service.lines.findIndex(
        (line) =>
          line.msg === message &&
          Object.entries(fields).every(([name, value]) => line[name] === value),
      ),
  };
  let pending = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    pending += chunk.toString('utf8');
    const complete = pending.split('\n');
    pending = complete.pop() ?? '';
    for (const line of complete.filter((text) => text.startsWith('{'))) {
      service.lines.push(JSON.parse(line) as Record<string, unknown>);
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    service.stderr += chunk.toString('utf8');
  });
  return service;
}

/** Resolves with the exit code, or rejects when the process is still running after `boundMs`. */
async function exitWithin(service: ServiceProcess, boundMs: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`the service did not exit within ${boundMs} ms of SIGTERM`)),
      boundMs,
    );
  });
  try {
    return await Promise.race([service.exited, bound]);
  } finally {
    clearTimeout(timer);
  }
}

describe('tokenfleet-refresher on SIGTERM', () => {
  let fixture: RenewalFixture;
  let service: ServiceProcess | undefined;
  let pod: TokenCache;
  let queue: RenewalQueue;

  beforeEach(async () => {
    fixture = await RenewalFixture.start({ name: 'shutdown', redisUrl, expiresIn: 60 });
    service = undefined;
  });

  afterEach(async () => {
    if (
      service !== undefined &&
      service.child.exitCode === null &&
      service.child.signalCode === null
    ) {
      service.child.kill('SIGKILL');
      await service.exited;
    }
    await fixture.close();
  });

  /**
   * Starts the service, has a pod fetch a token, and starts the renewal job of that token with
   * the token request held at the mock for `latencyMs`. Resolves once the request has arrived.
   */
  async function startRenewalInService(shutdownTimeoutMs: number, latencyMs: number) {
    const client = fixture.clients[0]!;
    service = startService({
      TOKENFLEET_REDIS_URL: redisUrl,
      QUIQUP_CLIENT_ID: client.clientId,
      QUIQUP_CLIENT_SECRET: client.clientSecret,
      QUIQUP_ENVIRONMENT: 'staging',
      QUIQUP_BASE_URL: fixture.mock.url,
      TOKENFLEET_QUEUE: fixture.queueName,
      TOKENFLEET_QUEUE_PREFIX: fixture.queuePrefix,
      TOKENFLEET_KEY_PREFIX: fixture.keyPrefix,
      TOKENFLEET_REFRESHER_PORT: '0',
      TOKENFLEET_SWEEP_INTERVAL_MS: '500',
      TOKENFLEET_SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs),
      TOKENFLEET_SKEW_MS: String(CACHE_OPTIONS.skewMs),
      TOKENFLEET_REFRESH_AHEAD_MS: String(CACHE_OPTIONS.refreshAheadMs),
      LOG_LEVEL: 'info',
    });
    await waitFor(() => service!.indexOf('renewal worker started') >= 0, {
      timeoutMs: 30_000,
      description: 'the service to start its worker',
    });

    queue = fixture.openQueue();
    pod = fixture.openCache({ ...CACHE_OPTIONS, renewal: queue });
    await pod.getToken();
    fixture.mock.setFaults({ latencyMs, times: 1 });
    await (await queue.getRenewalJob(pod.id, 1))!.promote();
    await waitFor(() => fixture.mock.counts().tokenRequests === 2, {
      description: 'the service to send the renewal request',
    });
    expect(service.indexOf('renewing token', { generation: 1 })).toBeGreaterThanOrEqual(0);
    return service;
  }

  function expectOrderedShutdown(running: ServiceProcess): void {
    const signal = running.indexOf('shutdown signal received', { signal: 'SIGTERM' });
    const steps = SHUTDOWN_STEPS.map((step) => running.indexOf('shutdown step finished', { step }));
    const stopped = running.indexOf('refresher stopped');
    expect(signal).toBeGreaterThanOrEqual(0);
    expect(steps.every((index) => index > signal)).toBe(true);
    expect([...steps].sort((a, b) => a - b)).toEqual(steps);
    expect(stopped).toBeGreaterThan(steps.at(-1)!);
    expect(running.indexOf('shutdown step timed out; continuing')).toBe(-1);
    expect(running.indexOf('shutdown step failed; continuing')).toBe(-1);
  }

  describe('when the running job finishes within the shutdown timeout', () => {
    it('completes the job, closes in order and exits 0', async () => {
      const shutdownTimeoutMs = 10_000;
      const running = await startRenewalInService(shutdownTimeoutMs, 1_500);

      running.child.kill('SIGTERM');
      const code = await exitWithin(
        running,
        shutdownTimeoutMs + CLOSE_STEP_TIMEOUT_MS + EXIT_SLACK_MS,
      );

      expect(code).toBe(0);
      expectOrderedShutdown(running);
      const renewed = running.indexOf('token renewed', { generation: 1 });
      const workerClosed = running.indexOf('shutdown step finished', {
        step: 'renewal worker closed',
      });
      expect(renewed).toBeGreaterThan(running.indexOf('shutdown signal received'));
      expect(renewed).toBeLessThan(workerClosed);
      expect(
        running.indexOf('renewal job handed back: still running at the shutdown timeout'),
      ).toBe(-1);
      const job = (await queue.getRenewalJob(pod.id, 1))!;
      expect(await job.getState()).toBe('completed');
      expect(job.returnvalue).toMatchObject({ outcome: 'refreshed', generation: 2 });
      expect(fixture.mock.counts()).toMatchObject({ tokenRequests: 2, tokenSuccesses: 2 });
      expect(running.stderr).toBe('');
    });
  });

  describe('when the running job outlasts the shutdown timeout', () => {
    it('hands the job back, exits 0, and another worker renews', async () => {
      const shutdownTimeoutMs = 500;
      const running = await startRenewalInService(shutdownTimeoutMs, 60_000);

      running.child.kill('SIGTERM');
      const code = await exitWithin(
        running,
        shutdownTimeoutMs + CLOSE_STEP_TIMEOUT_MS + EXIT_SLACK_MS,
      );

      expect(code).toBe(0);
      expectOrderedShutdown(running);
      const handedBack = running.indexOf(
        'renewal job handed back: still running at the shutdown timeout',
        { generation: 1 },
      );
      expect(handedBack).toBeGreaterThan(running.indexOf('shutdown signal received'));
      expect(running.indexOf('token renewed')).toBe(-1);
      expect(await queue.getRenewalJobState(pod.id, 1)).toBe('waiting');
      expect(running.stderr).toBe('');

      fixture.startWorker([fixture.openCache(CACHE_OPTIONS)]);
      await fixture.waitForJobState(queue, pod.id, 1, ['completed', 'failed'], 45_000);
      const job = (await queue.getRenewalJob(pod.id, 1))!;
      expect(job.returnvalue).toMatchObject({ outcome: 'refreshed' });
      expect(fixture.mock.counts()).toMatchObject({ tokenRequests: 3, tokenSuccesses: 2 });
    });
  });
});
