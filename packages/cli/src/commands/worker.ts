import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAuthorizedFetch } from '@tokenfleet/core';
import { RESOURCE_PATH } from '@tokenfleet/mock-oauth';
import type { Logger } from 'pino';
import { optionOrEnv, type ParsedOptions, parsePositiveInteger } from '../args.js';
import {
  logLevelOption,
  PROVIDER_OPTIONS,
  REDIS_OPTIONS,
  resolveLogLevel,
  resolveProviderConfig,
  resolveRedisConfig,
  SECRET_NOTE,
} from '../config.js';
import { EXIT_FAILURE, EXIT_OK, UsageError } from '../errors.js';
import { createCliLogger } from '../logging.js';
import { openTokenSession, type TokenSession } from '../token-session.js';
import type { Command } from './command.js';

/** Default pause between two rounds of calls, in milliseconds. */
const DEFAULT_INTERVAL_MS = 1_000;

/** Maximum pause between rounds, in milliseconds: one day. */
const MAX_INTERVAL_MS = 86_400_000;

/** Maximum concurrent calls per round. */
const MAX_CONCURRENCY = 1_000;

/** Maximum value of `--rounds`. */
const MAX_ROUNDS = 1_000_000;

/** Counts of one round of calls. */
interface RoundResult {
  ok: number;
  unauthorized: number;
  otherStatus: number;
  errors: number;
}

/** `tokenfleet worker`: a long-running demo pod that calls the protected resource in a loop. */
export const workerCommand: Command = {
  spec: {
    name: 'worker',
    title: 'Run a demo pod that calls a protected resource in a loop.',
    summary:
      'Runs a demo pod: calls the protected resource through the authorized fetch in rounds, ' +
      'logs each round as one pino line on stdout and stops on SIGINT or SIGTERM. Used by the ' +
      'docker-compose example.',
    usage: 'tokenfleet worker [options]',
    options: {
      'resource-url': {
        type: 'string',
        valueName: 'URL',
        env: 'TOKENFLEET_RESOURCE_URL',
        defaultText: `<base URL>${RESOURCE_PATH}, the mock server's resource`,
        description: 'Protected resource to call.',
      },
      'interval-ms': {
        type: 'string',
        valueName: 'MS',
        defaultText: String(DEFAULT_INTERVAL_MS),
        description: 'Pause between two rounds, in milliseconds.',
      },
      concurrency: {
        type: 'string',
        valueName: 'N',
        defaultText: '1',
        description: 'Concurrent calls per round.',
      },
      rounds: {
        type: 'string',
        valueName: 'N',
        description: 'Stop after N rounds; exit 1 when a call failed. Default: run until stopped.',
      },
      ...REDIS_OPTIONS,
      ...PROVIDER_OPTIONS,
      'log-level': logLevelOption('info', 'stdout'),
    },
    notes: [SECRET_NOTE],
  },

  async run(values, io) {
    const resourceUrl = resolveResourceUrl(values, io.env);
    const intervalMs = parsePositiveInteger(
      'interval-ms',
      values['interval-ms'],
      DEFAULT_INTERVAL_MS,
      MAX_INTERVAL_MS,
    );
    const concurrency = parsePositiveInteger('concurrency', values.concurrency, 1, MAX_CONCURRENCY);
    const rounds =
      values.rounds === undefined
        ? undefined
        : parsePositiveInteger('rounds', values.rounds, 1, MAX_ROUNDS);
    const redis = resolveRedisConfig(values, io.env);
    const provider = resolveProviderConfig(values, io.env);
    // Library components add their own `component` field, and this command's lines use `worker`.
    const baseLogger = createCliLogger(resolveLogLevel(values, io.env, 'info'), 1);
    const logger = baseLogger.child({ component: 'worker' });

    const session = await openTokenSession({
      redis,
      provider,
      renewal: true,
      reconnect: true,
      logger: baseLogger,
    });
    watchCache(session, logger);

    const controller = new AbortController();
    const onSignal = (signal: NodeJS.Signals) => {
      logger.info({ signal }, 'worker stopping');
      controller.abort();
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);

    logger.info(
      { resourceUrl, tokenId: session.cache.id, intervalMs, concurrency, rounds },
      'worker started',
    );
    let failedCalls = 0;
    try {
      const authorizedFetch = createAuthorizedFetch(session.cache);
      for (let round = 1; rounds === undefined || round <= rounds; round += 1) {
        const result = await runRound(authorizedFetch, resourceUrl, concurrency, logger, round);
        failedCalls += concurrency - result.ok;
        if (controller.signal.aborted || round === rounds) {
          break;
        }
        try {
          await sleep(intervalMs, undefined, { signal: controller.signal });
        } catch {
          break;
        }
      }
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await session.close();
      logger.info({ failedCalls }, 'worker stopped');
    }
    return rounds !== undefined && failedCalls > 0 ? EXIT_FAILURE : EXIT_OK;
  },
};

async function runRound(
  authorizedFetch: typeof fetch,
  resourceUrl: string,
  concurrency: number,
  logger: Logger,
  round: number,
): Promise<RoundResult> {
  const result: RoundResult = { ok: 0, unauthorized: 0, otherStatus: 0, errors: 0 };
  const started = performance.now();
  const calls = Array.from({ length: concurrency }, async () => {
    try {
      const response = await authorizedFetch(resourceUrl);
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
      logger.error({ err, round }, 'call failed');
    }
  });
  await Promise.all(calls);

  const durationMs = Math.round(performance.now() - started);
  const level = result.ok === concurrency ? 'info' : 'warn';
  logger[level]({ round, ...result, durationMs }, 'round finished');
  return result;
}

/**
 * Logs the tokens that other pods fetched. The cache logs its own refreshes, failures and
 * degraded mode itself; no event carries a token.
 */
function watchCache(session: TokenSession, logger: Logger): void {
  session.cache.on('refreshed', (event) => {
    if (event.origin === 'remote') {
      logger.info(event, 'token refreshed by another pod');
    }
  });
}

/** Takes `--resource-url`, else the mock server's resource under `--base-url`. */
function resolveResourceUrl(values: ParsedOptions, env: NodeJS.ProcessEnv): string {
  const baseUrl = optionOrEnv(values, 'base-url', 'QUIQUP_BASE_URL', env);
  const url =
    optionOrEnv(values, 'resource-url', 'TOKENFLEET_RESOURCE_URL', env) ??
    (baseUrl === undefined ? undefined : `${baseUrl.replace(/\/+$/, '')}${RESOURCE_PATH}`);
  if (url === undefined) {
    throw new UsageError(
      'missing resource URL: pass --resource-url or set TOKENFLEET_RESOURCE_URL (or QUIQUP_BASE_URL)',
    );
  }
  if (!/^https?:\/\/[^/]/.test(url)) {
    throw new UsageError(
      `option --resource-url must be an http:// or https:// URL, received '${url}'`,
    );
  }
  return url;
}
