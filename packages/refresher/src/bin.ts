#!/usr/bin/env -S node --import tsx
// NOTE: the shebang runs the TypeScript source through tsx, which the workspace root provides;
// the build rewrites it to a plain node shebang in dist/bin.js.
import type { TokenProvider } from '@tokenfleet/core';
import { type Logger, pino } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { ConfigError, createProviders, type RefresherConfig, readConfig } from './config.js';
import { type Refresher, startRefresher } from './refresher.js';
import { CLOSE_STEP_TIMEOUT_MS } from './shutdown.js';

/** Exit code for invalid configuration, as for a usage error. */
const EXIT_CONFIG = 2;

/** Exit code when startup fails, shutdown runs out of time or a second signal arrives. */
const EXIT_FAILURE = 1;

/** Log paths that may contain a secret or a token; pino replaces their values. */
const REDACT_PATHS = [
  'client_secret',
  'clientSecret',
  'access_token',
  'accessToken',
  'authorization',
  '*.client_secret',
  '*.clientSecret',
  '*.access_token',
  '*.accessToken',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
];

async function main(): Promise<void> {
  const { config, providers } = readConfigOrExit();
  // Synchronous writes: with pino's default asynchronous stdout, the flush at process.exit() can
  // write the last lines before a write still in flight, or drop that write, so the shutdown
  // steps would show out of order or not at all.
  const logger = pino(
    {
      name: 'tokenfleet-refresher',
      level: config.logLevel,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    },
    pino.destination({ dest: 1, sync: true }),
  );
  // Node would print the rejection as plain text and exit; this keeps the log line in JSON.
  process.on('unhandledRejection', (err) => {
    logger.fatal({ err }, 'unhandled rejection; exiting');
    process.exit(EXIT_FAILURE);
  });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  let refresher: Refresher;
  try {
    refresher = await startRefresher({
      redis: config.redisUrl,
      providers,
      queueName: config.queueName,
      queuePrefix: config.queuePrefix,
      keyPrefix: config.keyPrefix,
      port: config.port,
      host: config.host,
      sweepIntervalMs: config.sweepIntervalMs,
      concurrency: config.concurrency,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
      cacheOptions: cacheOptionsOf(config),
      logger,
      metricsRegistry: registry,
    });
  } catch (err) {
    logger.fatal({ err }, 'refresher failed to start');
    process.exit(EXIT_FAILURE);
  }

  handleSignals(refresher, config, logger);
}

/** Reads the configuration and creates the providers; exits with code 2 on a configuration error. */
function readConfigOrExit(): { config: RefresherConfig; providers: TokenProvider[] } {
  try {
    const config = readConfig(process.env);
    return { config, providers: createProviders(config.clients) };
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`tokenfleet-refresher: invalid configuration: ${err.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw err;
  }
}

function cacheOptionsOf(config: RefresherConfig): { skewMs?: number; refreshAheadMs?: number } {
  const options: { skewMs?: number; refreshAheadMs?: number } = {};
  if (config.skewMs !== undefined) {
    options.skewMs = config.skewMs;
  }
  if (config.refreshAheadMs !== undefined) {
    options.refreshAheadMs = config.refreshAheadMs;
  }
  return options;
}

function handleSignals(refresher: Refresher, config: RefresherConfig, logger: Logger): void {
  let shuttingDown = false;

  const onSignal = (signal: NodeJS.Signals) => {
    if (shuttingDown) {
      logger.warn({ signal }, 'second shutdown signal received; exiting at once');
      process.exit(EXIT_FAILURE);
    }
    shuttingDown = true;
    // The worker may wait shutdownTimeoutMs for running jobs; one more step bound covers the rest.
    const deadlineMs = config.shutdownTimeoutMs + CLOSE_STEP_TIMEOUT_MS;
    logger.info({ signal, deadlineMs }, 'shutdown signal received');
    const deadline = setTimeout(() => {
      logger.error({ deadlineMs }, 'shutdown did not finish in time; exiting');
      process.exit(EXIT_FAILURE);
    }, deadlineMs);

    refresher.close().then(
      () => {
        clearTimeout(deadline);
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(EXIT_FAILURE);
      },
    );
  };

  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

main().catch((err: unknown) => {
  console.error('tokenfleet-refresher: unexpected error', err);
  process.exit(EXIT_FAILURE);
});
