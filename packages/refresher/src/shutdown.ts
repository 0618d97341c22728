import type { TokenCache } from '@tokenfleet/core';
import type { Logger } from 'pino';
import { closeConnection, type OwnedConnection } from './connection.js';
import type { HealthServer } from './health-server.js';
import type { RenewalQueue } from './renewal-queue.js';
import type { RenewalSweep } from './renewal-sweep.js';
import type { RenewalWorker } from './renewal-worker.js';

/**
 * Bound of each shutdown step other than the worker's, in milliseconds: closing a cache or a
 * queue takes a few Redis round trips, so a step that takes longer is stuck on a dead connection.
 */
export const CLOSE_STEP_TIMEOUT_MS = 5_000;

/** How long open HTTP requests may run on after every other part has closed, in milliseconds. */
const HTTP_GRACE_MS = 1_000;

/** The parts of a refresher; any of them may be missing when startup failed halfway. */
export interface RefresherParts {
  caches?: TokenCache[];
  queue?: RenewalQueue;
  worker?: RenewalWorker;
  sweep?: RenewalSweep;
  server?: HealthServer;
}

/**
 * Shuts a refresher down in order: the HTTP server stops accepting, the sweep stops, the worker
 * finishes or hands back its jobs, then the caches, the queue and the connection close. Each step
 * is bounded, so this resolves within `workerTimeoutMs` + 5 steps × 5 s + 1 s even when Redis is gone.
 */
export async function shutDownRefresher(
  parts: RefresherParts,
  connection: OwnedConnection,
  workerTimeoutMs: number,
  logger: Logger,
): Promise<void> {
  logger.info('refresher shutting down');
  const { server, sweep, worker, caches, queue } = parts;

  if (server !== undefined) {
    server.stopAccepting();
    logger.info({ step: 'health server stopped accepting connections' }, 'shutdown step finished');
  }
  if (sweep !== undefined) {
    await runStep(logger, 'renewal sweep stopped', CLOSE_STEP_TIMEOUT_MS, () => sweep.stop());
  }
  if (worker !== undefined) {
    // The worker bounds its own wait for running jobs; the step adds room for closing its connections.
    const timeoutMs = workerTimeoutMs + CLOSE_STEP_TIMEOUT_MS;
    await runStep(logger, 'renewal worker closed', timeoutMs, () => worker.close());
  }
  if (caches !== undefined && caches.length > 0) {
    await runStep(logger, 'token caches closed', CLOSE_STEP_TIMEOUT_MS, async () => {
      await Promise.all(caches.map((cache) => cache.close()));
    });
  }
  if (queue !== undefined) {
    await runStep(logger, 'renewal queue closed', CLOSE_STEP_TIMEOUT_MS, () => queue.close());
  }
  if (connection.owned) {
    const closed = await runStep(logger, 'redis connection closed', CLOSE_STEP_TIMEOUT_MS, () =>
      closeConnection(connection.client),
    );
    if (!closed) {
      connection.client.disconnect();
    }
  }
  if (server !== undefined) {
    await runStep(logger, 'health server closed', HTTP_GRACE_MS + CLOSE_STEP_TIMEOUT_MS, () =>
      server.closed(HTTP_GRACE_MS),
    );
  }
  logger.info('refresher stopped');
}

/** Runs one step within `timeoutMs` and logs how it ended; returns whether it finished in time. */
async function runStep(
  logger: Logger,
  done: string,
  timeoutMs: number,
  step: () => Promise<void>,
): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  try {
    const outcome = await Promise.race([step().then(() => 'done' as const), timeout]);
    if (outcome === 'timeout') {
      logger.warn({ step: done, timeoutMs }, 'shutdown step timed out; continuing');
      return false;
    }
    logger.info({ step: done }, 'shutdown step finished');
    return true;
  } catch (err) {
    logger.error({ err, step: done }, 'shutdown step failed; continuing');
    return false;
  } finally {
    clearTimeout(timer);
  }
}
