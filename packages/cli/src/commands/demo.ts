import { optionOrEnv, parsePositiveInteger } from '../args.js';
import { logLevelOption, resolveLogLevel } from '../config.js';
import { type DemoSummary, runDemo } from '../demo-run.js';
import { EXIT_FAILURE, EXIT_OK } from '../errors.js';
import { createCliLogger } from '../logging.js';
import { type CliIo, formatRows, writeJson, writeLine } from '../output.js';
import type { Command } from './command.js';

/** Default number of worker processes: enough to contend for the fleet lock on a laptop. */
const DEFAULT_WORKERS = 8;

/** Default concurrent calls per worker. */
const DEFAULT_CALLS = 200;

/** Maximum worker processes. Each is a Node.js process of roughly 60 MB (an estimate). */
const MAX_WORKERS = 64;

/** Maximum calls per worker. All of them are open at once, each on its own socket. */
const MAX_CALLS = 5_000;

/** Exit codes of a run stopped by a signal: 128 + the signal number, as shells report it. */
const SIGNAL_EXIT_CODES: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

/** The abort reason when a signal stops the demo. */
class DemoInterruptedError extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
  }
}

/** `tokenfleet demo`: a fleet of worker processes sharing one token on this machine. */
export const demoCommand: Command = {
  spec: {
    name: 'demo',
    title: 'Run a fleet of workers against a mock server on this machine.',
    summary:
      'Starts Redis (unless one is given), a mock Quiqup staging server, the refresher and ' +
      'worker processes that all start calling the protected resource at once with no token ' +
      'stored. Passes when every call succeeds and the fleet sent exactly one token request.',
    usage: 'tokenfleet demo [options]',
    options: {
      workers: {
        type: 'string',
        valueName: 'N',
        defaultText: String(DEFAULT_WORKERS),
        description: `Worker processes, from 1 to ${MAX_WORKERS}.`,
      },
      calls: {
        type: 'string',
        valueName: 'N',
        defaultText: String(DEFAULT_CALLS),
        description: `Concurrent calls per worker, from 1 to ${MAX_CALLS}.`,
      },
      json: {
        type: 'boolean',
        description: 'Print the summary as one JSON line and no progress lines.',
      },
      'redis-url': {
        type: 'string',
        valueName: 'URL',
        env: 'REDIS_URL',
        description:
          'Redis server to use. Default: start redis-server on a free port, else a ' +
          'testcontainers container.',
      },
      'log-file': {
        type: 'string',
        valueName: 'PATH',
        description:
          'Append the pino logs of every component and worker to this file. Default: no logs.',
      },
      'log-level': logLevelOption('info', 'the --log-file'),
    },
    notes: [
      'Each run uses its own key prefix and queue name; on a Redis server that the demo did not ' +
        'start, it deletes them when it ends. Exit codes: 0 passed, 1 failed, 2 usage error, ' +
        '130 or 143 when stopped by SIGINT or SIGTERM.',
    ],
  },

  async run(values, io) {
    const workers = parsePositiveInteger('workers', values.workers, DEFAULT_WORKERS, MAX_WORKERS);
    const calls = parsePositiveInteger('calls', values.calls, DEFAULT_CALLS, MAX_CALLS);
    const redisUrl = optionOrEnv(values, 'redis-url', 'REDIS_URL', io.env);
    const logFile = typeof values['log-file'] === 'string' ? values['log-file'] : undefined;
    const logLevel = resolveLogLevel(values, io.env, 'info');
    const json = values.json === true;
    const logger = createCliLogger(logFile === undefined ? 'silent' : logLevel, logFile ?? 2);

    const controller = new AbortController();
    const onSignal = (signal: NodeJS.Signals) => {
      controller.abort(new DemoInterruptedError(signal));
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);

    if (!json) {
      writeLine(io.stderr, `tokenfleet demo: ${workers} workers x ${calls} calls`);
    }
    let summary: DemoSummary;
    try {
      summary = await runDemo({
        workers,
        calls,
        redisUrl,
        logFile,
        logLevel,
        logger,
        signal: controller.signal,
        progress: (line) => {
          if (!json) {
            writeLine(io.stderr, `  ${line}`);
          }
        },
      });
    } catch (err) {
      if (err instanceof DemoInterruptedError) {
        writeLine(io.stderr, `tokenfleet demo: ${err.message}; stopped everything it started`);
        return SIGNAL_EXIT_CODES[err.signal] ?? EXIT_FAILURE;
      }
      throw err;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }

    if (json) {
      writeJson(io.stdout, summary);
    } else {
      printSummary(io, summary);
    }
    return summary.passed ? EXIT_OK : EXIT_FAILURE;
  },
};

function printSummary(io: CliIo, summary: DemoSummary): void {
  const rows = [
    ['workers', String(summary.workers)],
    ['calls', `${summary.calls} (${summary.callsPerWorker} per worker)`],
    ['successes', String(summary.successes)],
    ['failures', String(summary.failures)],
    ['401 responses', String(summary.unauthorized)],
    ['token requests', `${summary.tokenRequests} (expected 1)`],
    [
      'shared token',
      summary.sharedToken
        ? 'yes, one token for every worker'
        : `no, ${summary.distinctTokens} tokens`,
    ],
    ['elapsed', `${summary.elapsedMs} ms of calls, ${summary.totalMs} ms in all`],
    ['result', summary.passed ? 'passed' : `failed: ${summary.problems.join('; ')}`],
  ];
  io.stdout.write('\n');
  io.stdout.write(formatRows(rows));
}
