/**
 * One worker process of `tokenfleet demo`: a stand-in for a pod. It creates a token cache for the
 * mock Quiqup client, waits for the start signal, makes its calls to the protected resource all at
 * once through the authorized fetch, reports one `RESULT` line and exits.
 */
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { createAuthorizedFetch, type TokenCache } from '@tokenfleet/core';
import type { Logger } from 'pino';
import {
  CONFIG_PREFIX,
  type DemoWorkerConfig,
  type DemoWorkerResult,
  ERROR_PREFIX,
  GO_LINE,
  READY_LINE,
  RESULT_PREFIX,
} from './demo-protocol.js';
import { createCliLogger } from './logging.js';
import { openTokenSession, type TokenSession } from './token-session.js';

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

try {
  await runWorker();
  process.exitCode = 0;
} catch (err) {
  const message = err instanceof Error ? err.message : String(err);
  process.stdout.write(`${ERROR_PREFIX}${message.replace(/\s+/g, ' ')}\n`);
  process.exitCode = 1;
} finally {
  process.stdin.destroy();
}

async function runWorker(): Promise<void> {
  const config = JSON.parse(await expectLine(CONFIG_PREFIX)) as DemoWorkerConfig;
  // Library components add their own `component` field, and this process's lines use `demo-worker`.
  const baseLogger = createCliLogger(
    config.logFile ? config.logLevel : 'silent',
    config.logFile ?? 1,
  ).child({ worker: config.index });
  const logger = baseLogger.child({ component: 'demo-worker' });

  const session = await openTokenSession({
    redis: { redisUrl: config.redisUrl, keyPrefix: config.keyPrefix, queueName: config.queueName },
    provider: {
      environment: 'staging',
      baseUrl: config.baseUrl,
      clientId: config.clientId,
      clientSecret: config.clientSecret,
    },
    renewal: true,
    reconnect: false,
    logger: baseLogger,
  });

  // The demo and the worker stop together: a signal ends the calls and closes the connections.
  const stop = () => {
    void session.close().finally(() => process.exit(1));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);

  try {
    process.stdout.write(`${READY_LINE}\n`);
    await expectLine(GO_LINE);
    const result = await makeCalls(session, config, logger);
    process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(result)}\n`);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await session.close();
  }
}

async function makeCalls(
  session: TokenSession,
  config: DemoWorkerConfig,
  logger: Logger,
): Promise<DemoWorkerResult> {
  const tokenHashes = new Set<string>();
  const authorizedFetch = createAuthorizedFetch(recordingCache(session.cache, tokenHashes));
  const result: DemoWorkerResult = {
    index: config.index,
    calls: config.calls,
    ok: 0,
    unauthorized: 0,
    otherStatus: 0,
    errors: 0,
    firstError: undefined,
    tokenHashes: [],
    elapsedMs: 0,
  };

  const started = performance.now();
  const calls = Array.from({ length: config.calls }, async () => {
    try {
      const response = await authorizedFetch(config.resourceUrl);
      await response.arrayBuffer();
      if (response.ok) {
        result.ok += 1;
      } else if (response.status === 401) {
        result.unauthorized += 1;
      } else {
        result.otherStatus += 1;
      }
    } catch (err) {
      result.errors += 1;
      result.firstError ??= err instanceof Error ? err.message : String(err);
      logger.error({ err }, 'demo call failed');
    }
  });
  await Promise.all(calls);

  result.elapsedMs = Math.round(performance.now() - started);
  result.tokenHashes = [...tokenHashes];
  logger.info({ ...result, tokenHashes: undefined }, 'demo calls finished');
  return result;
}

/** Wraps the cache so that the hash of every token handed to a call is recorded. */
function recordingCache(
  cache: TokenCache,
  tokenHashes: Set<string>,
): Pick<TokenCache, 'getToken' | 'invalidate'> {
  return {
    getToken: async () => {
      const token = await cache.getToken();
      tokenHashes.add(createHash('sha256').update(token).digest('hex'));
      return token;
    },
    invalidate: (token) => cache.invalidate(token),
  };
}

/** Reads the next line from the demo; returns what follows `prefix`. */
async function expectLine(prefix: string): Promise<string> {
  const next = await lines.next();
  if (next.done) {
    throw new Error(`stdin closed before the ${prefix.trim()} line`);
  }
  if (!next.value.startsWith(prefix)) {
    throw new Error(`expected a ${prefix.trim()} line from the demo`);
  }
  return next.value.slice(prefix.length);
}
