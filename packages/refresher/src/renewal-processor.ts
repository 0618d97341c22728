import { ClientRejectedError, type RenewResult, type TokenCache } from '@tokenfleet/core';
import { UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import type { RefresherMetrics } from './metrics.js';
import type { RenewalJob } from './renewal-queue.js';

/** A run that shutdown cut short; its job was handed back to the queue, so it is neither counted nor retried here. */
export class RenewalCancelledError extends Error {
  constructor() {
    super('renewal run cancelled: the worker shut down and handed the job back to the queue');
    this.name = 'RenewalCancelledError';
  }
}

/** Facts about a failed run for the backoff strategy, keyed by the error that the run threw. */
export interface RetryHint {
  retryAfterMs: number | undefined;
  /** Life left of the stored token, in milliseconds; 0 when none is stored, `undefined` when unknown. */
  remainingMs: number | undefined;
}

/** A job that a processor is running, with the lock token needed to hand it back. */
export interface ActiveRenewal {
  job: RenewalJob;
  lockToken: string | undefined;
}

export interface RenewalProcessorContext {
  /** Caches by token id; a `Map` that the caller passed is read live. */
  caches: ReadonlyMap<string, TokenCache>;
  queueName: string;
  logger: Logger;
  metrics: RefresherMetrics;
  retryHints: WeakMap<Error, RetryHint>;
  activeRenewals: Map<string, ActiveRenewal>;
}

/** A BullMQ processor. It declares all three parameters, since BullMQ passes the abort signal only then. */
export type RenewalProcessor = (
  job: RenewalJob,
  lockToken: string | undefined,
  signal: AbortSignal | undefined,
) => Promise<RenewResult>;

/** Creates the processor that runs renewal jobs against the caches in `context`. */
export function createRenewalProcessor(context: RenewalProcessorContext): RenewalProcessor {
  return (job, lockToken, signal) => processRenewal(context, job, lockToken, signal);
}

async function processRenewal(
  context: RenewalProcessorContext,
  job: RenewalJob,
  lockToken: string | undefined,
  signal: AbortSignal | undefined,
): Promise<RenewResult> {
  const { tokenId, generation, dueAt } = job.data;
  const jobId = job.id ?? '';
  const fields = { tokenId, generation, jobId, attempt: job.attemptsMade + 1 };
  const log = context.logger;

  const cache = context.caches.get(tokenId);
  if (cache === undefined) {
    context.metrics.countRun('unrecoverable');
    const message =
      `no token cache for token ${tokenId}: this worker holds no provider for it; run a worker ` +
      `that has this client, or give workers with different clients different queue names ` +
      `(queue "${context.queueName}")`;
    log.error(fields, 'token renewal failed: unknown token');
    throw new UnrecoverableError(message);
  }

  // The lag of a retry is the back-off itself, so only the first run shows how late the queue was.
  if (job.attemptsMade === 0 && typeof dueAt === 'number') {
    context.metrics.observeLag(Date.now() - dueAt);
  }

  log.info(fields, 'renewing token');
  context.activeRenewals.set(jobId, { job, lockToken });
  try {
    const result = await untilAborted(cache.renew(generation), signal);
    context.metrics.countRun(result.outcome);
    context.metrics.recordTokenLife(tokenId, result.remainingMs);
    const resultFields = {
      ...fields,
      outcome: result.outcome,
      storedGeneration: result.generation,
    };
    if (result.outcome === 'refreshed') {
      log.info({ ...resultFields, remainingMs: result.remainingMs }, 'token renewed');
    } else {
      log.info(resultFields, 'renewal skipped');
    }
    return result;
  } catch (error) {
    if (error instanceof RenewalCancelledError) {
      log.warn(fields, 'renewal run cancelled');
      throw error;
    }
    throw await classifyFailure(context, cache, error, fields);
  } finally {
    context.activeRenewals.delete(jobId);
  }
}

/**
 * Turns a failed run into the error BullMQ gets: `UnrecoverableError` for a rejected client,
 * otherwise the original error with a retry hint for the backoff strategy.
 */
async function classifyFailure(
  context: RenewalProcessorContext,
  cache: TokenCache,
  error: unknown,
  fields: Record<string, unknown>,
): Promise<Error> {
  const err = error instanceof Error ? error : new Error(String(error));

  if (err instanceof ClientRejectedError) {
    context.metrics.countRun('unrecoverable');
    context.logger.error({ ...fields, err, retrying: false }, 'token renewal failed');
    const unrecoverable = new UnrecoverableError(
      `token endpoint rejected the client, so retrying cannot help until its configuration is fixed: ${err.message}`,
    );
    unrecoverable.cause = err;
    return unrecoverable;
  }

  context.metrics.countRun('failed');
  const remainingMs = await readRemainingMs(cache, context.logger, fields);
  const retryAfterMs = retryAfterOf(err);
  context.retryHints.set(err, { retryAfterMs, remainingMs });
  context.logger.warn({ ...fields, err, remainingMs, retryAfterMs }, 'token renewal failed');
  return err;
}

/** Reads the stored token's life: 0 when none is stored, `undefined` when Redis cannot tell. */
async function readRemainingMs(
  cache: TokenCache,
  logger: Logger,
  fields: Record<string, unknown>,
): Promise<number | undefined> {
  try {
    const status = await cache.status();
    return status.generation === undefined ? 0 : (status.remainingMs ?? 0);
  } catch (err) {
    logger.warn({ ...fields, err }, 'token status read failed; retry without a deadline');
    return undefined;
  }
}

function retryAfterOf(err: Error): number | undefined {
  const value = (err as { retryAfterMs?: unknown }).retryAfterMs;
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/** Settles with `promise`, or rejects once `signal` aborts: BullMQ aborts it when shutdown hands the job back. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) {
    return promise;
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      reject(new RenewalCancelledError());
    };
    if (signal.aborted) {
      onAbort();
    } else {
      signal.addEventListener('abort', onAbort, { once: true });
    }
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
