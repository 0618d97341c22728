import { type OptionSpec, optionOrEnv, type ParsedOptions } from './args.js';
import { UsageError } from './errors.js';

/** Key prefix that `createTokenCache()` uses when none is set. */
export const DEFAULT_KEY_PREFIX = 'tokenfleet';

/** Renewal queue name that the refresher uses when none is set. */
export const DEFAULT_QUEUE_NAME = 'tokenfleet-renewal';

/** Quiqup environments that have a base URL in `quiqup()`. */
export const QUIQUP_ENVIRONMENTS = ['production', 'staging'] as const;
export type QuiqupEnvironment = (typeof QUIQUP_ENVIRONMENTS)[number];

/** pino levels accepted by `--log-level`. */
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Options that locate the fleet's state in Redis. */
export const REDIS_OPTIONS: Record<string, OptionSpec> = {
  'redis-url': {
    type: 'string',
    valueName: 'URL',
    env: 'TOKENFLEET_REDIS_URL',
    description: 'Redis server, as a redis:// or rediss:// URL.',
  },
  'key-prefix': {
    type: 'string',
    valueName: 'PREFIX',
    env: 'TOKENFLEET_KEY_PREFIX',
    defaultText: DEFAULT_KEY_PREFIX,
    description: 'Prefix of every token key in Redis.',
  },
  queue: {
    type: 'string',
    valueName: 'NAME',
    env: 'TOKENFLEET_QUEUE',
    defaultText: DEFAULT_QUEUE_NAME,
    description: 'BullMQ renewal queue.',
  },
};

/** Options that configure the Quiqup client; the secret comes from the environment only. */
export const PROVIDER_OPTIONS: Record<string, OptionSpec> = {
  'client-id': {
    type: 'string',
    valueName: 'ID',
    env: 'QUIQUP_CLIENT_ID',
    description: 'Quiqup OAuth2 client id.',
  },
  environment: {
    type: 'string',
    valueName: 'NAME',
    env: 'QUIQUP_ENVIRONMENT',
    defaultText: 'production',
    description: 'Quiqup environment: production or staging.',
  },
  'base-url': {
    type: 'string',
    valueName: 'URL',
    env: 'QUIQUP_BASE_URL',
    description: 'Base URL of the token endpoint; replaces the environment URL.',
  },
};

/** Returns the `--log-level` option; `fallback` is the level when neither flag nor variable is set. */
export function logLevelOption(fallback: string, where: string): OptionSpec {
  return {
    type: 'string',
    valueName: 'LEVEL',
    env: 'TOKENFLEET_LOG_LEVEL',
    defaultText: fallback,
    description: `pino log level of the library logs, written to ${where}.`,
  };
}

/** The note that `--help` prints about the client secret. */
export const SECRET_NOTE =
  'The client secret is read from QUIQUP_CLIENT_SECRET only, so that it never appears in the ' +
  'process list or the shell history.';

export interface RedisConfig {
  redisUrl: string;
  keyPrefix: string;
  queueName: string;
}

export interface ProviderConfig {
  clientId: string;
  /** Never printed or logged. */
  clientSecret: string;
  environment: QuiqupEnvironment;
  baseUrl: string | undefined;
}

/** Resolves `--redis-url`, `--key-prefix` and `--queue` from flags, then the environment. */
export function resolveRedisConfig(values: ParsedOptions, env: NodeJS.ProcessEnv): RedisConfig {
  const redisUrl = optionOrEnv(values, 'redis-url', 'TOKENFLEET_REDIS_URL', env);
  if (redisUrl === undefined) {
    throw new UsageError('missing Redis URL: pass --redis-url or set TOKENFLEET_REDIS_URL');
  }
  return {
    redisUrl: checkRedisUrl(redisUrl, '--redis-url'),
    ...resolveKeyConfig(values, env),
  };
}

/** Resolves `--key-prefix` and `--queue` from flags, then the environment. */
export function resolveKeyConfig(
  values: ParsedOptions,
  env: NodeJS.ProcessEnv,
): { keyPrefix: string; queueName: string } {
  const keyPrefix =
    optionOrEnv(values, 'key-prefix', 'TOKENFLEET_KEY_PREFIX', env) ?? DEFAULT_KEY_PREFIX;
  // The same rule as `options.keyPrefix` of createTokenCache(): braces would break the hash tag.
  if (/[{}\s]/.test(keyPrefix)) {
    throw new UsageError(
      `option --key-prefix must contain no braces or spaces, received '${keyPrefix}'`,
    );
  }

  const queueName = optionOrEnv(values, 'queue', 'TOKENFLEET_QUEUE', env) ?? DEFAULT_QUEUE_NAME;
  // BullMQ rejects a queue name with a colon, since it separates the parts of its keys.
  if (queueName.includes(':')) {
    throw new UsageError(`option --queue must contain no colon, received '${queueName}'`);
  }
  return { keyPrefix, queueName };
}

/** Checks that a Redis URL has the redis: or rediss: scheme; returns it unchanged. */
export function checkRedisUrl(url: string, flag: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(
      `option ${flag} must be a redis:// or rediss:// URL, received an invalid URL`,
    );
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new UsageError(
      `option ${flag} must be a redis:// or rediss:// URL, received scheme '${parsed.protocol}'`,
    );
  }
  return url;
}

/** Resolves the Quiqup client from flags and the environment; the secret from the environment. */
export function resolveProviderConfig(
  values: ParsedOptions,
  env: NodeJS.ProcessEnv,
): ProviderConfig {
  const clientId = optionOrEnv(values, 'client-id', 'QUIQUP_CLIENT_ID', env);
  if (clientId === undefined) {
    throw new UsageError('missing client id: pass --client-id or set QUIQUP_CLIENT_ID');
  }
  const clientSecret = env.QUIQUP_CLIENT_SECRET;
  if (clientSecret === undefined || clientSecret === '') {
    throw new UsageError('missing client secret: set QUIQUP_CLIENT_SECRET');
  }

  const environment = optionOrEnv(values, 'environment', 'QUIQUP_ENVIRONMENT', env) ?? 'production';
  if (!isQuiqupEnvironment(environment)) {
    throw new UsageError(
      `option --environment must be production or staging, received '${environment}'`,
    );
  }

  const baseUrl = optionOrEnv(values, 'base-url', 'QUIQUP_BASE_URL', env);
  if (baseUrl !== undefined && !/^https?:\/\/[^/]/.test(baseUrl)) {
    throw new UsageError(
      `option --base-url must be an http:// or https:// URL, received '${baseUrl}'`,
    );
  }
  return { clientId, clientSecret, environment, baseUrl };
}

/** Resolves `--log-level` or `TOKENFLEET_LOG_LEVEL`. */
export function resolveLogLevel(
  values: ParsedOptions,
  env: NodeJS.ProcessEnv,
  fallback: string,
): string {
  const level = optionOrEnv(values, 'log-level', 'TOKENFLEET_LOG_LEVEL', env) ?? fallback;
  if (!LOG_LEVELS.includes(level)) {
    throw new UsageError(
      `option --log-level must be one of ${LOG_LEVELS.join(', ')}, received '${level}'`,
    );
  }
  return level;
}

/** Returns the URL with any password replaced by `***`, for messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') {
      parsed.password = '***';
    }
    return parsed.toString();
  } catch {
    return '(invalid URL)';
  }
}

function isQuiqupEnvironment(value: string): value is QuiqupEnvironment {
  return (QUIQUP_ENVIRONMENTS as readonly string[]).includes(value);
}
