import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { quiqup } from '@tokenfleet/core';
import { DEFAULT_MOCK_OAUTH_OPTIONS, startMockOAuthServer } from '@tokenfleet/mock-oauth';
import { createRenewalQueue, startRefresher } from '@tokenfleet/refresher';
import type { Logger } from 'pino';
import { startWorkerFleet } from './demo-fleet.js';
import type { DemoWorkerResult } from './demo-protocol.js';
import { closeRedis, connectRedis } from './redis-connection.js';
import { launchRedis, type RedisSource } from './redis-launcher.js';

/** Keys deleted per DEL while a run cleans up a Redis server that it did not start. */
const CLEANUP_BATCH = 500;

export interface DemoOptions {
  workers: number;
  /** Concurrent calls per worker. */
  calls: number;
  /** Redis server to use; undefined starts one. */
  redisUrl: string | undefined;
  /** Log file that the demo and its workers append pino lines to; undefined logs nothing. */
  logFile: string | undefined;
  logLevel: string;
  logger: Logger;
  /** Aborts the run; everything started so far is stopped. */
  signal: AbortSignal;
  /** Receives one short line per step, for people. */
  progress(line: string): void;
}

/** Outcome of a demo run; `--json` prints it as it is. */
export interface DemoSummary {
  passed: boolean;
  /** Reasons of the failure; empty when the run passed. */
  problems: string[];
  workers: number;
  callsPerWorker: number;
  calls: number;
  /** Calls with a 2xx response. */
  successes: number;
  /** Calls that did not end with a 2xx response, errors included. */
  failures: number;
  /** 401 responses of the protected resource, counted by the mock, retried ones included. */
  unauthorized: number;
  /** Token requests that reached the mock token endpoint. */
  tokenRequests: number;
  /** Distinct tokens that the calls of all workers sent. */
  distinctTokens: number;
  sharedToken: boolean;
  /** From the start signal to the last worker's result, in milliseconds. */
  elapsedMs: number;
  /** Whole run, startup and shutdown included, in milliseconds. */
  totalMs: number;
  redis: RedisSource;
  /** Key prefix and queue name of this run, unique per run. */
  keyPrefix: string;
  queueName: string;
}

/** One step of shutdown, run in reverse order of start. */
type Cleanup = { name: string; run: () => Promise<void> };

/**
 * Runs the demo: a Redis server, the mock Quiqup staging server, the refresher and `workers`
 * worker processes that each make `calls` concurrent calls through the authorized fetch.
 * Everything started is stopped before this resolves or rejects.
 */
export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
  const started = performance.now();
  const cleanups: Cleanup[] = [];
  let summary: Omit<DemoSummary, 'totalMs'>;
  try {
    summary = await startAndRun(options, cleanups);
  } finally {
    await runCleanups(cleanups, options.logger);
    options.progress('stopped everything that the demo started');
  }
  return { ...summary, totalMs: Math.round(performance.now() - started) };
}

async function startAndRun(
  options: DemoOptions,
  cleanups: Cleanup[],
): Promise<Omit<DemoSummary, 'totalMs'>> {
  const { logger, progress, signal } = options;

  signal.throwIfAborted();
  const redis = await launchRedis(options.redisUrl === undefined ? {} : { url: options.redisUrl });
  cleanups.push({ name: 'redis', run: () => redis.close() });
  progress(`redis      ${redis.description}`);

  signal.throwIfAborted();
  const mock = await startMockOAuthServer({ preset: 'staging', logger });
  cleanups.push({ name: 'mock oauth server', run: () => mock.close() });
  progress(`mock       ${mock.url} (Quiqup staging: tokens live ${mock.expiresIn} s)`);

  // A fresh key prefix and queue per run: a shared Redis server keeps no state between runs.
  const runId = randomBytes(4).toString('hex');
  const keyPrefix = `tokenfleet-demo-${runId}`;
  const queueName = `tokenfleet-demo-${runId}`;
  if (redis.source === 'url') {
    cleanups.push({
      name: 'demo keys',
      run: () => deleteRunKeys(redis.url, keyPrefix, queueName, logger),
    });
  }

  const client = DEFAULT_MOCK_OAUTH_OPTIONS.clients[0]!;
  const provider = quiqup({
    environment: 'staging',
    baseUrl: mock.url,
    clientId: client.clientId,
    clientSecret: client.clientSecret,
  });
  signal.throwIfAborted();
  const refresher = await startRefresher({
    redis: redis.url,
    providers: [provider],
    port: 0,
    queueName,
    keyPrefix,
    logger,
  });
  cleanups.push({ name: 'refresher', run: () => refresher.close() });
  progress(`refresher  ${refresher.url ?? 'in process'} (queue ${queueName})`);

  signal.throwIfAborted();
  const fleet = startWorkerFleet(options.workers, (index) => ({
    index,
    redisUrl: redis.url,
    keyPrefix,
    queueName,
    baseUrl: mock.url,
    resourceUrl: mock.resourceUrl,
    clientId: client.clientId,
    clientSecret: client.clientSecret,
    calls: options.calls,
    logFile: options.logFile,
    logLevel: options.logLevel,
  }));
  cleanups.push({ name: 'workers', run: () => fleet.stop() });
  progress(`workers    starting ${options.workers} processes, ${options.calls} calls each`);

  await untilAborted(fleet.ready, signal);
  progress('workers    all ready; starting every call at once (cold start, no token stored)');
  const goAt = performance.now();
  fleet.go();
  const results = await untilAborted(fleet.results, signal);
  const elapsedMs = Math.round(performance.now() - goAt);

  const counts = mock.counts();
  return summarize(options, results, {
    tokenRequests: counts.tokenRequests,
    unauthorized: counts.resourceUnauthorized,
    elapsedMs,
    redis: redis.source,
    keyPrefix,
    queueName,
  });
}

interface RunFacts {
  tokenRequests: number;
  unauthorized: number;
  elapsedMs: number;
  redis: RedisSource;
  keyPrefix: string;
  queueName: string;
}

function summarize(
  options: DemoOptions,
  results: DemoWorkerResult[],
  facts: RunFacts,
): Omit<DemoSummary, 'totalMs'> {
  const calls = options.workers * options.calls;
  const successes = results.reduce((sum, result) => sum + result.ok, 0);
  const failures = calls - successes;
  const distinctTokens = new Set(results.flatMap((result) => result.tokenHashes)).size;

  const problems: string[] = [];
  if (failures > 0) {
    const firstError = results.find((result) => result.firstError !== undefined)?.firstError;
    problems.push(
      `${failures} of ${calls} calls failed${firstError ? `, first error: ${firstError}` : ''}`,
    );
  }
  if (facts.tokenRequests !== 1) {
    problems.push(`expected 1 token request, the mock server counted ${facts.tokenRequests}`);
  }
  if (distinctTokens !== 1) {
    problems.push(`expected 1 token shared by every worker, the calls sent ${distinctTokens}`);
  }

  return {
    passed: problems.length === 0,
    problems,
    workers: options.workers,
    callsPerWorker: options.calls,
    calls,
    successes,
    failures,
    unauthorized: facts.unauthorized,
    tokenRequests: facts.tokenRequests,
    distinctTokens,
    sharedToken: distinctTokens === 1,
    elapsedMs: facts.elapsedMs,
    redis: facts.redis,
    keyPrefix: facts.keyPrefix,
    queueName: facts.queueName,
  };
}

/** Waits for `promise`, or rejects with the abort reason as soon as `signal` aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Runs every cleanup in reverse order; a failed one is logged and the rest still run. */
async function runCleanups(cleanups: Cleanup[], logger: Logger): Promise<void> {
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup.run();
    } catch (err) {
      logger.warn({ err, step: cleanup.name }, 'demo cleanup failed');
    }
  }
}

/** Deletes the run's token keys and renewal queue from a Redis server that the demo did not start. */
async function deleteRunKeys(
  url: string,
  keyPrefix: string,
  queueName: string,
  logger: Logger,
): Promise<void> {
  const redis = await connectRedis(url, { reconnect: false, logger });
  try {
    const queue = createRenewalQueue({ connection: redis, queueName, logger });
    try {
      await queue.bullQueue.obliterate({ force: true });
    } finally {
      await queue.close();
    }

    // The prefix is made of letters, digits and dashes only, so it needs no glob escaping.
    for await (const keys of redis.scanStream({ match: `${keyPrefix}:*`, count: CLEANUP_BATCH })) {
      const batch = keys as string[];
      if (batch.length > 0) {
        await redis.del(...batch);
      }
    }
  } finally {
    await closeRedis(redis);
  }
}
