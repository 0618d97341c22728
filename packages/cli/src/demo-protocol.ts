/**
 * Messages between the demo and its worker processes, one per line. The demo writes a `CONFIG`
 * line and later a `GO` line to the worker's stdin. The worker writes `READY` once its cache is
 * set up, then one `RESULT` line, or an `ERROR` line when it fails.
 */

/** Prefix of the line that carries {@link DemoWorkerConfig} as JSON. */
export const CONFIG_PREFIX = 'CONFIG ';

/** Line that starts the calls of every worker at the same moment. */
export const GO_LINE = 'GO';

/** Line a worker writes when its cache is set up and it waits for {@link GO_LINE}. */
export const READY_LINE = 'READY';

/** Prefix of the line that carries {@link DemoWorkerResult} as JSON. */
export const RESULT_PREFIX = 'RESULT ';

/** Prefix of the line that carries the message of a worker failure. */
export const ERROR_PREFIX = 'ERROR ';

/** Settings of one worker, sent on stdin so that the demo client's secret is never in argv. */
export interface DemoWorkerConfig {
  index: number;
  redisUrl: string;
  keyPrefix: string;
  queueName: string;
  /** Base URL of the mock token endpoint, passed to `quiqup({ baseUrl })`. */
  baseUrl: string;
  resourceUrl: string;
  clientId: string;
  clientSecret: string;
  /** Calls to the protected resource, all started at once. */
  calls: number;
  /** File that pino lines are appended to; undefined writes no log. */
  logFile: string | undefined;
  logLevel: string;
}

/** Report of one worker. Token hashes are SHA-256 hex, and no token crosses the pipe. */
export interface DemoWorkerResult {
  index: number;
  calls: number;
  /** Calls with a 2xx response. */
  ok: number;
  /** Calls whose final response was 401, after the one retry of the authorized fetch. */
  unauthorized: number;
  /** Calls with a response of any other status. */
  otherStatus: number;
  /** Calls that raised an error, such as a failed token request. */
  errors: number;
  /** Message of the first error, safe to print. */
  firstError: string | undefined;
  /** SHA-256 of every distinct token that this worker's calls sent. */
  tokenHashes: string[];
  /** From the start signal to the last response, in milliseconds. */
  elapsedMs: number;
}
