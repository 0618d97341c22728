import { readFileSync } from 'node:fs';
import {
  type OAuth2ClientCredentialsOptions,
  oauth2ClientCredentials,
  type QuiqupOptions,
  quiqup,
  type TokenProvider,
} from '@tokenfleet/core';
import { type ClientEntry, parseClientsFile } from './clients-file.js';
import { DEFAULT_REFRESHER_OPTIONS } from './defaults.js';

/** Defaults of the environment variables that `tokenfleet-refresher` reads. */
export const DEFAULT_ENV = Object.freeze({
  TOKENFLEET_REDIS_URL: 'redis://127.0.0.1:6379',
  TOKENFLEET_REFRESHER_PORT: 9464,
  TOKENFLEET_REFRESHER_HOST: DEFAULT_REFRESHER_OPTIONS.host,
  LOG_LEVEL: 'info',
});

const LOG_LEVELS: ReadonlySet<string> = new Set([
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
]);

/** Error for an environment variable with an invalid value. Its message names the variable and never contains a secret. */
export class ConfigError extends Error {
  readonly variable: string;

  /** `message` must name `variable`; it must never quote a secret. */
  constructor(variable: string, message: string) {
    super(message);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}

/** Creates a `ConfigError` whose message starts with the variable's name. */
function invalidVariable(variable: string, problem: string): ConfigError {
  return new ConfigError(variable, `${variable} ${problem}`);
}

/** The service settings read from the environment. */
export interface RefresherConfig {
  redisUrl: string;
  queueName: string | undefined;
  queuePrefix: string | undefined;
  keyPrefix: string | undefined;
  port: number;
  host: string;
  sweepIntervalMs: number | undefined;
  concurrency: number | undefined;
  shutdownTimeoutMs: number;
  logLevel: string;
  skewMs: number | undefined;
  refreshAheadMs: number | undefined;
  /** Every client to renew tokens for, with the variable or file that configured it. */
  clients: ClientEntry[];
}

/**
 * Reads the configuration from environment variables. An empty variable counts as unset.
 * Throws `ConfigError` naming the first invalid variable.
 */
export function readConfig(
  env: Readonly<Record<string, string | undefined>>,
  readFile: (path: string) => string = (path) => readFileSync(path, 'utf8'),
): RefresherConfig {
  const read = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  };

  const redisUrl = read('TOKENFLEET_REDIS_URL') ?? DEFAULT_ENV.TOKENFLEET_REDIS_URL;
  if (!/^rediss?:\/\//.test(redisUrl)) {
    throw invalidVariable('TOKENFLEET_REDIS_URL', 'must start with redis:// or rediss://');
  }
  // TOKENFLEET_LOG_LEVEL matches the CLI's variable; LOG_LEVEL is the common container convention.
  const logLevelVariable =
    read('TOKENFLEET_LOG_LEVEL') === undefined ? 'LOG_LEVEL' : 'TOKENFLEET_LOG_LEVEL';
  const logLevel = read(logLevelVariable) ?? DEFAULT_ENV.LOG_LEVEL;
  if (!LOG_LEVELS.has(logLevel)) {
    throw invalidVariable(
      logLevelVariable,
      `must be one of ${[...LOG_LEVELS].join(', ')} (received "${logLevel}")`,
    );
  }
  const port =
    readInteger(read, 'TOKENFLEET_REFRESHER_PORT', 0, 65_535) ??
    DEFAULT_ENV.TOKENFLEET_REFRESHER_PORT;

  const clients = [...readQuiqupClient(read), ...readClientsFile(read, readFile)];
  if (clients.length === 0) {
    throw invalidVariable(
      'QUIQUP_CLIENT_ID',
      'is not set and neither is TOKENFLEET_CLIENTS_FILE: configure at least one client to renew tokens for',
    );
  }

  return {
    redisUrl,
    queueName: read('TOKENFLEET_QUEUE'),
    queuePrefix: read('TOKENFLEET_QUEUE_PREFIX'),
    keyPrefix: read('TOKENFLEET_KEY_PREFIX'),
    port,
    host: read('TOKENFLEET_REFRESHER_HOST') ?? DEFAULT_ENV.TOKENFLEET_REFRESHER_HOST,
    sweepIntervalMs: readInteger(read, 'TOKENFLEET_SWEEP_INTERVAL_MS', 1),
    concurrency: readInteger(read, 'TOKENFLEET_WORKER_CONCURRENCY', 1),
    shutdownTimeoutMs:
      readInteger(read, 'TOKENFLEET_SHUTDOWN_TIMEOUT_MS', 0) ??
      DEFAULT_REFRESHER_OPTIONS.shutdownTimeoutMs,
    logLevel,
    skewMs: readInteger(read, 'TOKENFLEET_SKEW_MS', 0),
    refreshAheadMs: readInteger(read, 'TOKENFLEET_REFRESH_AHEAD_MS', 0),
    clients,
  };
}

/**
 * Creates a provider per configured client. The core's option checks raise `TypeError`; each
 * becomes a `ConfigError` that names the variable or file entry the client came from.
 */
export function createProviders(clients: readonly ClientEntry[]): TokenProvider[] {
  return clients.map((client) => {
    try {
      return client.type === 'quiqup'
        ? quiqup(client.options as QuiqupOptions)
        : oauth2ClientCredentials(client.options as OAuth2ClientCredentialsOptions);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new ConfigError(client.variable, `${client.description} is invalid: ${reason}`);
    }
  });
}

function readQuiqupClient(read: (name: string) => string | undefined): ClientEntry[] {
  const clientId = read('QUIQUP_CLIENT_ID');
  const clientSecret = read('QUIQUP_CLIENT_SECRET');
  if (clientId === undefined && clientSecret === undefined) {
    return [];
  }
  if (clientId === undefined) {
    throw invalidVariable('QUIQUP_CLIENT_ID', 'is not set, but QUIQUP_CLIENT_SECRET is');
  }
  if (clientSecret === undefined) {
    throw invalidVariable('QUIQUP_CLIENT_SECRET', 'is not set, but QUIQUP_CLIENT_ID is');
  }
  const environment = read('QUIQUP_ENVIRONMENT');
  if (environment !== 'production' && environment !== 'staging') {
    const received = environment === undefined ? 'not set' : `received "${environment}"`;
    throw invalidVariable('QUIQUP_ENVIRONMENT', `must be production or staging (${received})`);
  }

  const options: QuiqupOptions = { environment, clientId, clientSecret };
  const baseUrl = read('QUIQUP_BASE_URL');
  if (baseUrl !== undefined) {
    options.baseUrl = baseUrl;
  }
  return [
    {
      type: 'quiqup',
      variable: 'QUIQUP_CLIENT_ID',
      description: 'the Quiqup client of the QUIQUP_* variables',
      options,
    },
  ];
}

function readClientsFile(
  read: (name: string) => string | undefined,
  readFile: (path: string) => string,
): ClientEntry[] {
  const path = read('TOKENFLEET_CLIENTS_FILE');
  if (path === undefined) {
    return [];
  }
  let text: string;
  try {
    text = readFile(path);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw invalidVariable(
      'TOKENFLEET_CLIENTS_FILE',
      `names a file that cannot be read: ${path} (${reason})`,
    );
  }
  const parsed = parseClientsFile(text, read);
  if (typeof parsed === 'string') {
    throw invalidVariable('TOKENFLEET_CLIENTS_FILE', `names an invalid file: ${path}: ${parsed}`);
  }
  return parsed;
}

function readInteger(
  read: (name: string) => string | undefined,
  name: string,
  minimum: number,
  maximum = Number.MAX_SAFE_INTEGER,
): number | undefined {
  const text = read(name);
  if (text === undefined) {
    return undefined;
  }
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < minimum || value > maximum) {
    const range =
      maximum === Number.MAX_SAFE_INTEGER
        ? `of at least ${minimum}`
        : `from ${minimum} to ${maximum}`;
    throw invalidVariable(name, `must be an integer ${range} (received "${text}")`);
  }
  return value;
}
