#!/usr/bin/env -S node --import tsx
// NOTE: the shebang runs the TypeScript source through tsx, which the workspace root provides;
// the build rewrites it to a plain node shebang in dist/bin.js.
import { pino } from 'pino';
import { CliUsageError, parseCliConfig, USAGE } from './cli-config.js';
import { startMockOAuthServer } from './server.js';

/** How long close() may take after SIGTERM or SIGINT before the process exits anyway. */
const SHUTDOWN_TIMEOUT_MS = 5_000;

/** Exit status for an invalid flag or environment variable, as most command-line tools use. */
const USAGE_EXIT_CODE = 2;

async function main(): Promise<void> {
  let config: ReturnType<typeof parseCliConfig>;
  try {
    config = parseCliConfig(process.argv.slice(2), process.env);
  } catch (error) {
    if (error instanceof CliUsageError) {
      console.error(`tokenfleet-mock-oauth: ${error.message}\n\n${USAGE}`);
      process.exitCode = USAGE_EXIT_CODE;
      return;
    }
    throw error;
  }
  if (config.help) {
    console.log(USAGE);
    return;
  }

  // stdout carries only the URL, so a parent process can read it; logs go to stderr.
  const logger = pino(
    {
      level: config.logLevel,
      redact: [
        'client_secret',
        'clientSecret',
        'access_token',
        'authorization',
        '*.client_secret',
        '*.access_token',
        '*.authorization',
      ],
    },
    pino.destination({ fd: 2, sync: true }),
  );

  const server = await startMockOAuthServer({ ...config.serverOptions, logger });
  console.log(server.url);

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal received, exiting without waiting');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'stopping mock oauth server');

    const timer = setTimeout(() => {
      logger.error({ timeoutMs: SHUTDOWN_TIMEOUT_MS }, 'mock oauth server did not close in time');
      process.exit(1);
    }, SHUTDOWN_TIMEOUT_MS);
    timer.unref();

    server.close().then(
      () => {
        logger.info('mock oauth server stopped');
      },
      (error: unknown) => {
        logger.error({ err: error }, 'closing mock oauth server failed');
        process.exitCode = 1;
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error: unknown) => {
  console.error('tokenfleet-mock-oauth: failed to start:', error);
  process.exitCode = 1;
});
